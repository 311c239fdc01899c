"""TOTP secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the server secret.

The same construction as app.oidc.keys uses for signing keys, with its own HKDF ``info`` so the two keys
differ. The factor id and subject are the associated data: a sealed secret copied to another row (or
another subject) does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.mfa.errors import SecretUnavailable

_INFO = b"portcullis totp-secret encryption v1"
_IV_BYTES = 12


def _aead(server_secret: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(server_secret))


def _aad(factor_id: str, subject: str) -> bytes:
    return f"{factor_id}\n{subject}".encode()


def seal_secret(secret: str, server_secret: bytes, factor_id: str, subject: str) -> bytes:
    iv = os.urandom(_IV_BYTES)
    return iv + _aead(server_secret).encrypt(iv, secret.encode(), _aad(factor_id, subject))


def open_secret(blob: bytes, server_secret: bytes, factor_id: str, subject: str) -> str:
    try:
        plain = _aead(server_secret).decrypt(blob[:_IV_BYTES], blob[_IV_BYTES:], _aad(factor_id, subject))
    except InvalidTag:
        raise SecretUnavailable(
            f"TOTP secret of factor {factor_id} cannot be decrypted: PORTCULLIS_SECRET_KEY is not the one it "
            "was stored with, or the row was altered"
        ) from None
    return plain.decode()
