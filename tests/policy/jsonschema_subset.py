"""A JSON Schema (2020-12) validator for the keywords docs/schemas/ uses, so tests can hold the published
schemas and app/policy/rar.py to the same examples. Not a general validator: unknown keywords fail loudly."""

from __future__ import annotations

import re
from typing import Any

KEYWORDS = {
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "examples",
    "type",
    "const",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "pattern",
    "not",
    "minimum",
    "maximum",
}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def is_valid(schema: dict[str, Any], value: Any, root: dict[str, Any] | None = None) -> bool:
    root = root if root is not None else schema
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"validator does not know {unknown}"
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/")
        return is_valid(root["$defs"][ref.removeprefix("#/$defs/")], value, root)
    if "type" in schema and not TYPES[schema["type"]](value):
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "pattern" in schema and (not isinstance(value, str) or not re.search(schema["pattern"], value)):
        return False
    if "not" in schema and is_valid(schema["not"], value, root):
        return False
    if "minimum" in schema and value < schema["minimum"]:
        return False
    if "maximum" in schema and value > schema["maximum"]:
        return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return False
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            return False
        if "items" in schema and not all(is_valid(schema["items"], v, root) for v in value):
            return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        if not all(is_valid(props[k], v, root) for k, v in value.items() if k in props):
            return False
    return True
