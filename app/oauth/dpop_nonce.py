"""RFC 9449 section 8 server-provided DPoP nonces, stateless: an HMAC of the current time window.

The current window's nonce and the previous one are accepted, so a nonce lives between one and two windows;
every replica with the same secret agrees without shared state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

WINDOW_SECONDS = 120


def _nonce(key: bytes, window: int) -> str:
    mac = hmac.new(key, f"dpop-nonce:{window}".encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def current(key: bytes, now: datetime) -> str:
    return _nonce(key, int(now.timestamp()) // WINDOW_SECONDS)


def previous(key: bytes, now: datetime) -> str:
    return _nonce(key, int(now.timestamp()) // WINDOW_SECONDS - 1)
