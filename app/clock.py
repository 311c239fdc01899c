"""Time and randomness behind small protocols, so the cores stay pure and tests can pin them."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Protocol

_ALPHANUMERIC = string.ascii_letters + string.digits


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Entropy(Protocol):
    def token(self, nbytes: int) -> str:
        """A URL-safe random string carrying ``nbytes`` bytes of entropy."""
        ...

    def alphanumeric(self, length: int) -> str:
        """A random string of ASCII letters and digits (log2(62) = 5.95 bits per character)."""
        ...

    def chance(self, probability: float) -> bool:
        """True with the given probability (for sampling)."""
        ...


class SystemEntropy:
    def token(self, nbytes: int) -> str:
        return secrets.token_urlsafe(nbytes)

    def alphanumeric(self, length: int) -> str:
        return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))

    def chance(self, probability: float) -> bool:
        return secrets.randbelow(1_000_000) < int(probability * 1_000_000)
