"""RFC 6749 section 3.3 access token scope: space-delimited, case-sensitive scope tokens."""

from __future__ import annotations

import re

from app.errors import InvalidScope

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def parse_scope(raw: str | None) -> list[str]:
    if raw is None or raw == "":
        return []
    tokens = raw.split(" ")
    if any(not _SCOPE_TOKEN.fullmatch(t) for t in tokens):
        raise InvalidScope("scope must be space-separated scope tokens (RFC 6749 section 3.3)")
    return list(dict.fromkeys(tokens))


def grant_scope(requested: str | None, allowed: list[str]) -> str:
    """The granted scope for a sign-in: ``openid`` plus what was asked, each of which must be allowed."""
    tokens = parse_scope(requested)
    unknown = [t for t in tokens if t not in allowed]
    if unknown:
        raise InvalidScope(f"scope not allowed: {' '.join(unknown)[:200]}")
    return " ".join(dict.fromkeys(["openid", *tokens]))


def narrow_scope(requested: str | None, granted: str) -> str:
    """RFC 6749 section 6: a refresh may ask for less than was granted, never more."""
    if requested is None or requested == "":
        return granted
    tokens = parse_scope(requested)
    held = granted.split(" ")
    extra = [t for t in tokens if t not in held]
    if extra:
        raise InvalidScope(f"scope exceeds the original grant: {' '.join(extra)[:200]}")
    return " ".join(tokens)
