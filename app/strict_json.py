"""RFC 7493 (I-JSON) for untrusted documents: unique member names (section 2.3), only Unicode scalar values
in strings (section 2.1: no lone surrogates), no NaN or Infinity (RFC 8259 section 6), bounded nesting.

Python's ``json.loads`` keeps the last of two members with one name, turns ``"\\ud800"`` into a string
that cannot be encoded as UTF-8 (so the database, the audit log or the response fails later, a 500), and
reads ``NaN``. Every JSON document a client sends goes through :func:`loads` instead.
"""

from __future__ import annotations

import json
from typing import Any

from app.json_depth import MAX_JSON_DEPTH, json_depth_ok


class JsonRejected(ValueError):
    """The document is not JSON we accept; ``reason`` says why, safe to show the sender."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def loads(raw: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``raw`` (UTF-8 bytes or text) or raise :class:`JsonRejected` naming the first problem."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if not json_depth_ok(data, max_depth):
        raise JsonRejected(f"nests deeper than {max_depth} levels")
    try:
        # RFC 8259 section 8.1: UTF-8 only (json.loads would also guess UTF-16 and UTF-32 from bytes).
        text = raw if isinstance(raw, str) else raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRejected("not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)
    except JsonRejected:
        raise
    except (ValueError, RecursionError):
        raise JsonRejected("not valid JSON") from None
    _check_strings(value)
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name, value in pairs:
        if name in members:
            # repr() escapes what could not be encoded; the name is the sender's own, cut short.
            raise JsonRejected(f"member {name[:40]!r} appears more than once")
        members[name] = value
    return members


def _no_constant(name: str) -> Any:
    raise JsonRejected("not valid JSON")  # NaN, Infinity, -Infinity: RFC 8259 section 6 has no such numbers


def _check_strings(value: Any) -> None:
    """Every string (member names too) must encode as UTF-8: a lone surrogate escape does not."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            _scalar_values(item)
        elif isinstance(item, dict):
            for name, member in item.items():
                _scalar_values(name)
                pending.append(member)
        elif isinstance(item, list):
            pending.extend(item)


def _scalar_values(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonRejected("a string holds a lone UTF-16 surrogate, not a Unicode character") from None
