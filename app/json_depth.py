"""Bounding JSON nesting before ``json.loads``: untrusted documents (request bodies, fetched JWK sets)."""

from __future__ import annotations

# web3 / py_ecc raise Python's recursion limit to 100,000 on import; json.loads of a deeply nested body
# could then exhaust the C stack and kill the process instead of raising. Nothing we read nests deeper.
MAX_JSON_DEPTH = 32


def json_depth_ok(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when no array/object nesting in ``raw`` goes deeper than ``limit`` (strings are skipped)."""
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True
