"""EIP-5573 SIWE ReCaps: capabilities in the final ``Resources`` entry (``urn:recap:``), checked strictly.

A ReCap URI is ``urn:recap:`` and the unpadded base64url (RFC 4648 section 5) of a JSON ReCap Details
Object ``{"att": {<resource URI>: {<namespace>/<ability>: [<nota bene object>, ...]}}, "prf": [...]}``.
EIP-5573 requires the URI to be the last resource, the ``att`` keys (nested objects included) to be
unique and in JavaScript ``Array.sort()`` order, and the message's ``statement`` to end with the
human-readable translation of the capabilities (the "ReCap Translation Algorithm"); this module refuses
anything else with :class:`InvalidRecap` naming what failed. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from app.strict_json import JsonRejected, loads

PREFIX = "urn:recap:"
PREAMBLE = "I further authorize the stated URI to perform the following actions on my behalf:"
MAX_URI_CHARS = 8192
# EIP-5573 "Ability Strings": <namespace>/<ability>, each of [a-zA-Z0-9.*_+-].
_PART = r"[a-zA-Z0-9.*_+-]+"
ABILITY = re.compile(rf"({_PART})/({_PART})")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# The JSON Schema's resource pattern "^.+:.*$" (a URI has a scheme); we also refuse quotes, spaces and
# controls, which would make the statement ambiguous.
_RESOURCE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x26\x28-\x7e]*")


class InvalidRecap(ValueError):
    """The message's ReCap is missing, malformed or does not match its statement."""

    code = "invalid_recap"


@dataclass(frozen=True, slots=True)
class Recap:
    """A parsed ReCap Details Object: ``att`` (resource -> ability -> nota bene list) and ``prf``."""

    att: MappingProxyType[str, MappingProxyType[str, tuple[dict[str, Any], ...]]]
    prf: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "att": {
                r: {a: [dict(nb) for nb in nbs] for a, nbs in abilities.items()}
                for r, abilities in self.att.items()
            }
        }
        body["prf"] = list(self.prf)
        return body


def js_sort_key(value: str) -> list[int]:
    """JavaScript's default ``Array.sort()`` order: by UTF-16 code units (EIP-5573's key order)."""
    raw = value.encode("utf-16-be")
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def _check_sorted(keys: list[str], where: str) -> None:
    if keys != sorted(keys, key=js_sort_key):
        raise InvalidRecap(f"{where}: keys must be in lexicographic order (EIP-5573)")


def _check_nested_sorted(value: Any, where: str) -> None:
    if isinstance(value, dict):
        _check_sorted(list(value), where)
        for k, v in value.items():
            _check_nested_sorted(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_nested_sorted(v, f"{where}[{i}]")


def decode_uri(uri: str) -> Recap:
    """Decode one ReCap URI strictly: prefix, canonical unpadded base64url, I-JSON, the schema, key order."""
    if not uri.startswith(PREFIX):
        raise InvalidRecap("not a ReCap URI (urn:recap:)")
    if len(uri) > MAX_URI_CHARS:
        raise InvalidRecap(f"the ReCap URI is longer than {MAX_URI_CHARS} characters")
    payload = uri[len(PREFIX) :]
    if not _BASE64URL.fullmatch(payload) or len(payload) % 4 == 1:
        raise InvalidRecap("the ReCap payload is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRecap("the ReCap payload is not unpadded base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != payload:
        raise InvalidRecap("the ReCap payload is not canonical base64url (stray trailing bits)")
    try:
        doc = loads(raw.decode("utf-8"))
    except (JsonRejected, UnicodeDecodeError) as exc:
        raise InvalidRecap(f"the ReCap payload is not I-JSON: {getattr(exc, 'reason', exc)}") from None
    return parse_details(doc)


def parse_details(doc: Any) -> Recap:
    """The ReCap Details Object schema of EIP-5573, with no unknown members."""
    if not isinstance(doc, dict):
        raise InvalidRecap("the ReCap details must be a JSON object")
    unknown = set(doc) - {"att", "prf"}
    if unknown:
        raise InvalidRecap(f"unknown ReCap member {sorted(unknown)[0][:40]!r}")
    att = doc.get("att")
    if not isinstance(att, dict) or not att:
        raise InvalidRecap("att must be a non-empty JSON object")
    _check_sorted(list(att), "att")
    out: dict[str, MappingProxyType[str, tuple[dict[str, Any], ...]]] = {}
    for resource, abilities in att.items():
        if not _RESOURCE.fullmatch(resource):
            raise InvalidRecap(f"att: {resource[:80]!r} is not a URI")
        where = f"att[{resource[:80]!r}]"
        if not isinstance(abilities, dict) or not abilities:
            raise InvalidRecap(f"{where} must be a non-empty JSON object of abilities")
        _check_sorted(list(abilities), where)
        parsed: dict[str, tuple[dict[str, Any], ...]] = {}
        for ability, notes in abilities.items():
            if not ABILITY.fullmatch(ability):
                raise InvalidRecap(f"{where}: {ability[:60]!r} is not an ability string (namespace/name)")
            if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
                raise InvalidRecap(f"{where}[{ability!r}] must be an array of objects")
            _check_nested_sorted(notes, f"{where}[{ability!r}]")
            parsed[ability] = tuple(notes)
        out[resource] = MappingProxyType(parsed)
    prf = doc.get("prf", [])
    if not isinstance(prf, list) or not all(isinstance(p, str) and p for p in prf):
        raise InvalidRecap("prf must be an array of CID strings")
    return Recap(MappingProxyType(out), tuple(prf))


def encode_uri(recap: Recap) -> str:
    """The ReCap URI of ``recap``: keys in EIP-5573 order, compact JSON, unpadded base64url."""
    body = json.dumps(_sorted(recap.to_json()), separators=(",", ":"), ensure_ascii=False)
    return PREFIX + base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value, key=js_sort_key)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def translate(recap: Recap) -> str:
    """The ReCap Translation Algorithm: the preamble, then per resource and ability namespace (in key
    order) `` (n) 'namespace': 'a', 'b' for 'resource'.``"""
    parts = [PREAMBLE]
    n = 1
    for resource, abilities in recap.att.items():
        groups: dict[str, list[str]] = {}
        for ability in abilities:
            match = ABILITY.fullmatch(ability)
            assert match is not None  # parse_details checked it
            groups.setdefault(match.group(1), []).append(match.group(2))
        for namespace, names in groups.items():
            listed = ", ".join(f"'{name}'" for name in names)
            parts.append(f" ({n}) '{namespace}': {listed} for '{resource}'.")
            n += 1
    return "".join(parts)


def statement_for(recap: Recap, statement: str | None = None) -> str:
    """The statement a message carrying ``recap`` must have: the user's own text (if any), a space, then
    the translation."""
    text = translate(recap)
    return f"{statement} {text}" if statement else text


def extract(statement: str | None, resources: tuple[str, ...] | list[str]) -> Recap:
    """The ReCap Verification Algorithm on a parsed (and signature-verified) SIWE message: the final
    resource is a ReCap URI (and no other is), and the statement ends with its translation."""
    if not resources or not resources[-1].startswith(PREFIX):
        raise InvalidRecap("the message's final resource must be a ReCap URI (urn:recap:)")
    if any(r.startswith(PREFIX) for r in resources[:-1]):
        raise InvalidRecap("a ReCap URI must be the final resource, and only one may be present")
    recap = decode_uri(resources[-1])
    expected = translate(recap)
    if statement is None or not statement.endswith(expected):
        raise InvalidRecap("the statement does not end with the ReCap's translation (EIP-5573)")
    head = statement[: len(statement) - len(expected)]
    if head and not head.endswith(" "):
        raise InvalidRecap("the statement must separate the user's text from the ReCap's by one space")
    return recap
