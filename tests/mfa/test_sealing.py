"""TOTP secrets at rest: AES-256-GCM under the server secret, bound to their factor and subject."""

from __future__ import annotations

import pytest

from app.mfa.errors import SecretUnavailable
from app.mfa.sealing import open_secret, seal_secret

KEY = b"k" * 48
SUBJECT = "did:pkh:eip155:1:0x71C7656EC7ab88b098defB751B7401B5f6d8976F"


def test_round_trip_and_no_plaintext() -> None:
    blob = seal_secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", KEY, "f1", SUBJECT)
    assert b"JBSWY3DP" not in blob
    assert open_secret(blob, KEY, "f1", SUBJECT) == "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    assert seal_secret("A", KEY, "f1", SUBJECT) != seal_secret("A", KEY, "f1", SUBJECT)  # fresh IV


@pytest.mark.parametrize(
    ("key", "factor_id", "subject"),
    [(b"x" * 48, "f1", SUBJECT), (KEY, "f2", SUBJECT), (KEY, "f1", SUBJECT.replace(":1:", ":10:"))],
)
def test_wrong_key_row_or_subject_does_not_open(key: bytes, factor_id: str, subject: str) -> None:
    blob = seal_secret("JBSWY3DPEHPK3PXP", KEY, "f1", SUBJECT)
    with pytest.raises(SecretUnavailable):
        open_secret(blob, key, factor_id, subject)
