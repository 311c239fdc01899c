"""A proven sign-in (``Grant``) kept between the wallet signature, consent and the code exchange."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from app.oidc.tokens import Grant

_TIMES = ("auth_time", "not_after")
_TUPLES = ("amr", "authorization_details", "audience")


def dumps(grant: Grant) -> str:
    raw: dict[str, Any] = asdict(grant)
    for name in _TIMES:
        value = raw[name]
        raw[name] = value.isoformat() if value is not None else None
    return json.dumps(raw, sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Grant:
    raw: dict[str, Any] = json.loads(text)
    for name in _TIMES:
        value = raw[name]
        raw[name] = datetime.fromisoformat(value) if value is not None else None
    for name in _TUPLES:
        raw[name] = tuple(raw[name])
    return Grant(**raw)
