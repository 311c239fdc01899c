"""EIP-4361 Sign-In with Ethereum: strict parsing, canonical building and pure verification.

EIP-4361 messages signed with EIP-191 personal_sign by an EOA, EIP-55 addresses. The clock and
every expected value are arguments; nothing here performs I/O. See ``verify`` for where the
ERC-1271 / ERC-6492 contract-wallet path attaches.
"""

from app.siwe.eip55 import is_checksummed, to_checksum
from app.siwe.eip191 import decode_signature, personal_message_hash, recover_address
from app.siwe.errors import (
    ChainNotAllowed,
    DomainMismatch,
    ExpiredMessage,
    InvalidSignature,
    IssuedInFuture,
    MalformedMessage,
    MalformedSignature,
    MessageTooOld,
    NonceMismatch,
    NotYetValid,
    SchemeMismatch,
    SiweError,
    UriMismatch,
)
from app.siwe.message import SiweMessage, parse
from app.siwe.verify import Expectations, check_eoa_signature, check_fields, verify

__all__ = [
    "ChainNotAllowed",
    "DomainMismatch",
    "Expectations",
    "ExpiredMessage",
    "InvalidSignature",
    "IssuedInFuture",
    "MalformedMessage",
    "MalformedSignature",
    "MessageTooOld",
    "NonceMismatch",
    "NotYetValid",
    "SchemeMismatch",
    "SiweError",
    "SiweMessage",
    "UriMismatch",
    "check_eoa_signature",
    "check_fields",
    "decode_signature",
    "is_checksummed",
    "parse",
    "personal_message_hash",
    "recover_address",
    "to_checksum",
    "verify",
]
