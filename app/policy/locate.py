"""TOML v1.0.0 key positions: which line of a policy file defines a key path (for errors that name the line).

``tomllib`` parses values but keeps no positions, so this scans the text once more: table headers
(``[a."b.c"]``), array-of-tables headers (``[[a.b]]``, counted per path) and key/value lines (``x.y = ...``)
outside multi-line strings and arrays. Values inside inline tables and arrays resolve to their key's line.
It runs only on text ``tomllib`` already accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_WS = " \t"


def key_lines(text: str) -> dict[Path, int]:
    """Each key path the text defines, mapped to its 1-based line. Arrays of tables add the index."""
    lines: dict[Path, int] = {}
    counts: dict[Path, int] = {}
    table: Path = ()
    depth = 0  # open brackets of a multi-line array or inline table
    in_string: str | None = None  # the delimiter of an open multi-line string
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if in_string in line:
                in_string = None if line.count(in_string) % 2 == 1 else in_string
            continue
        if depth > 0:
            depth, in_string = _scan_value(line, depth)
            continue
        stripped = line.lstrip(_WS)
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            keys, _ = _parse_key(stripped, 2)
            base = tuple(keys)
            index = counts.get(base, 0)
            counts[base] = index + 1
            table = (*base, index)
            lines.setdefault(base, number)
            lines[table] = number
            continue
        if stripped.startswith("["):
            keys, _ = _parse_key(stripped, 1)
            table = _resolve(tuple(keys), counts)
            lines.setdefault(table, number)
            continue
        keys, rest = _parse_key(stripped, 0)
        if not keys:
            continue
        path = (*table, *keys)
        for i in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:i], number)
        after = stripped[rest:].lstrip(_WS)
        if after.startswith("="):
            depth, in_string = _scan_value(after[1:], 0)
    return lines


def line_of(lines: Mapping[Path, int], path: Sequence[str | int]) -> int:
    """The line of ``path`` or of its nearest defined ancestor; 1 when nothing matches."""
    key = tuple(path)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return 1


def _resolve(keys: Path, counts: Mapping[Path, int]) -> Path:
    """A ``[a.b.c]`` header under an array of tables ``[[a.b]]`` belongs to its latest element."""
    out: Path = ()
    for key in keys:
        out = (*out, key)
        if out in counts:
            out = (*out, counts[out] - 1)
    return out


def _parse_key(text: str, start: int) -> tuple[list[str], int]:
    """A dotted key from ``text[start:]``: its parts and the index just after it."""
    parts: list[str] = []
    i = start
    while True:
        while i < len(text) and text[i] in _WS:
            i += 1
        if i >= len(text):
            return parts, i
        char = text[i]
        if char == '"':
            end = i + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            raw = text[i + 1 : end]
            parts.append(raw.encode("utf-8").decode("unicode_escape") if "\\" in raw else raw)
            i = end + 1
        elif char == "'":
            end = text.index("'", i + 1)
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            match = _BARE.match(text, i)
            if match is None:
                return parts, i
            parts.append(match.group())
            i = match.end()
        while i < len(text) and text[i] in _WS:
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return parts, i


def _scan_value(text: str, depth: int) -> tuple[int, str | None]:
    """Bracket depth after ``text`` (strings and comments skipped), and an unclosed multi-line string."""
    i = 0
    while i < len(text):
        if text.startswith('"""', i) or text.startswith("'''", i):
            delim = text[i : i + 3]
            end = text.find(delim, i + 3)
            if end < 0:
                return depth, delim
            i = end + 3
            continue
        char = text[i]
        if char == "#":
            break
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif char == "'":
            end = text.find("'", i + 1)
            i = len(text) if end < 0 else end
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        i += 1
    return depth, None
