"""Random bytes drawn through ``app.clock.Entropy``, so tests can pin every secret and challenge."""

from __future__ import annotations

import base64

from app.clock import Entropy


def random_bytes(entropy: Entropy, nbytes: int) -> bytes:
    """``nbytes`` random bytes. ``Entropy.token(n)`` is base64url text carrying ``n`` bytes: decode it."""
    text = entropy.token(nbytes)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) < nbytes:
        raise ValueError(f"entropy source gave {len(raw)} bytes, {nbytes} asked")
    return raw[:nbytes]
