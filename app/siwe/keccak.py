"""Keccak-256 (the pre-NIST SHA-3 variant Ethereum uses), through safe-pysha3's C implementation.

eth-hash's default backend (pycryptodome) costs about 5 us per call here against about 1.4 us for
safe-pysha3; a sign-in needs three hashes, so the backend decides whether verification reaches the
70 % of bare signature recovery we aim for (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from sha3 import keccak_256


def keccak(data: bytes) -> bytes:
    digest: bytes = keccak_256(data).digest()
    return digest
