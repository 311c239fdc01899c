"""Recovery codes: 80 random bits each, shown once, stored as SHA-256, forgiving input."""

from __future__ import annotations

import hashlib

import pytest

from app.clock import SystemEntropy
from app.mfa import recovery
from app.mfa.errors import InvalidCode


class CountingEntropy(SystemEntropy):
    """Real randomness, counting the bytes drawn (a spy, not a fake)."""

    def __init__(self) -> None:
        self.drawn = 0

    def token(self, nbytes: int) -> str:
        self.drawn += nbytes
        return super().token(nbytes)


def test_codes_and_hashes() -> None:
    entropy = CountingEntropy()
    codes, hashes = recovery.generate_codes(entropy=entropy)
    assert len(codes) == recovery.DEFAULT_COUNT == len(set(codes)) == len(hashes)
    assert entropy.drawn == 16 * 10
    for code, digest in zip(codes, hashes, strict=True):
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set(code.replace("-", "")) <= set(recovery.ALPHABET)
        assert digest == hashlib.sha256(code.replace("-", "").encode()).hexdigest()
        assert code not in digest


def test_input_is_normalised() -> None:
    codes, hashes = recovery.generate_codes(1)
    code = codes[0]
    assert recovery.code_hash(code.lower()) == hashes[0]
    assert recovery.code_hash(code.replace("-", " ")) == hashes[0]
    assert recovery.code_hash(code.replace("-", "")) == hashes[0]
    assert recovery.normalise("oooo-iiii-llll-0000") == "0000111111110000"


@pytest.mark.parametrize(
    "code", ["", "ABCD-EFGH", "ABCD-EFGH-JKMN-PQRSU", "ABCD-EFGH-JKMN-PQR!", "ABCD-EFGH-JKMN-PQRU"]
)
def test_malformed_codes(code: str) -> None:
    with pytest.raises(InvalidCode):
        recovery.code_hash(code)


def test_count() -> None:
    assert len(recovery.generate_codes(3)[0]) == 3
