"""RFC 6238 TOTP: the RFC's own vector, +-1 step of drift, replay refused, enrolment URI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from app.mfa import totp
from app.mfa.errors import InvalidCode, ReplayedCode

# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890".
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
SUBJECT = "did:pkh:eip155:1:0x71C7656EC7ab88b098defB751B7401B5f6d8976F"
T0 = datetime(2026, 12, 6, 12, 0, 10, tzinfo=UTC)


def hotp(secret: str, counter: int, digits: int = 6) -> str:
    """RFC 4226 section 5.3, written out here so the test does not lean on pyotp."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def code_at(secret: str, when: datetime) -> str:
    return hotp(secret, int(when.timestamp()) // 30)


@pytest.mark.parametrize(
    ("unix", "eight_digits"),
    [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"), (2000000000, "69279037")],
)
def test_rfc6238_appendix_b_vectors(unix: int, eight_digits: str) -> None:
    when = datetime.fromtimestamp(unix, UTC)
    assert hotp(RFC_SECRET, unix // 30, 8) == eight_digits
    # Six digits are the same HOTP value mod 10^6 (RFC 4226 section 5.3).
    assert totp.verify(RFC_SECRET, eight_digits[-6:], when, None) == unix // 30


def test_one_step_of_drift_either_way_and_no_more() -> None:
    secret = totp.new_secret(bytes(range(20)))
    step = totp.step_at(T0)
    for offset in (-1, 0, 1):
        code = code_at(secret, T0 + timedelta(seconds=30 * offset))
        assert totp.verify(secret, code, T0, None) == step + offset
    for offset in (-2, 2):
        with pytest.raises(InvalidCode):
            totp.verify(secret, code_at(secret, T0 + timedelta(seconds=30 * offset)), T0, None)


def test_replay_of_an_accepted_code_is_refused() -> None:
    secret = totp.new_secret(bytes(range(20)))
    code = code_at(secret, T0)
    step = totp.verify(secret, code, T0, None)
    with pytest.raises(ReplayedCode):
        totp.verify(secret, code, T0 + timedelta(seconds=5), step)
    # An earlier code still inside the window is refused too once a later step was used (RFC 6238 5.2).
    later = totp.verify(secret, code_at(secret, T0 + timedelta(seconds=30)), T0, step)
    with pytest.raises(ReplayedCode):
        totp.verify(secret, code, T0, later)
    # The next step's code is fine.
    assert totp.verify(secret, code_at(secret, T0 + timedelta(seconds=60)), T0 + timedelta(seconds=60), later)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes(code: str) -> None:
    with pytest.raises(InvalidCode):
        totp.verify(totp.new_secret(bytes(20)), code, T0, None)


def test_typed_spacing_is_accepted() -> None:
    secret = totp.new_secret(bytes(range(20)))
    code = code_at(secret, T0)
    assert totp.verify(secret, f"{code[:3]} {code[3:]}", T0, None) == totp.step_at(T0)


def test_enrolment_uri_and_confirmation() -> None:
    secret, uri = totp.begin_enrolment(SUBJECT, "Portcullis", key=bytes(range(20)))
    assert secret == base64.b32encode(bytes(range(20))).decode() and len(secret) == 32  # 160 bits
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert unquote(parsed.path) == "/Portcullis:0x71C7656EC7ab88b098defB751B7401B5f6d8976F (chain 1)"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Portcullis"]
    assert totp.confirm(secret, code_at(secret, T0), T0) == totp.step_at(T0)
    with pytest.raises(InvalidCode):
        totp.confirm(secret, "000000" if code_at(secret, T0) != "000000" else "111111", T0)


def test_short_keys_and_foreign_subjects_are_refused() -> None:
    with pytest.raises(ValueError):
        totp.new_secret(bytes(10))
    with pytest.raises(ValueError):
        totp.begin_enrolment("alice@example.com", "Portcullis", key=bytes(20))
