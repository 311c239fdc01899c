"""Recovery codes: single-use, stored as SHA-256 hashes, shown to the user once.

Each code is 16 Crockford base32 characters (80 random bits), printed ``XXXX-XXXX-XXXX-XXXX``. At 80 bits
an unsalted SHA-256 cannot be reversed by search, and the store only accepts a hash together with the
subject it was issued to. Input is forgiving: case, dashes and spaces are ignored; I and L read as 1, O as 0.
"""

from __future__ import annotations

import hashlib

from app.clock import Entropy, SystemEntropy
from app.mfa.errors import InvalidCode
from app.mfa.randomness import random_bytes

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_CHARS = 16
GROUP = 4
DEFAULT_COUNT = 10

_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def _format(raw: str) -> str:
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalise(code: str) -> str:
    """The canonical 16 characters of a typed code; InvalidCode if it cannot be one."""
    text = code.upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(text) != CODE_CHARS or any(c not in ALPHABET for c in text):
        raise InvalidCode("a recovery code is 16 letters and digits")
    return text


def code_hash(code: str) -> str:
    """What the store keeps and looks up: SHA-256 (hex) of the normalised code."""
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def generate_codes(n: int = DEFAULT_COUNT, entropy: Entropy | None = None) -> tuple[list[str], list[str]]:
    """``n`` new codes to show once, and their hashes to store (same order)."""
    source = entropy or SystemEntropy()
    codes = []
    for _ in range(n):
        # 256 is a multiple of 32: the low five bits of a random byte are a uniform base32 digit.
        raw = "".join(ALPHABET[b & 31] for b in random_bytes(source, CODE_CHARS))
        codes.append(_format(raw))
    return codes, [code_hash(c) for c in codes]
