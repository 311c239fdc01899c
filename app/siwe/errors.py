"""EIP-4361 verification failures, one class per stable machine code.

Each class carries the ``code`` the server renders as the OAuth ``error`` value and the HTTP
``status`` it answers with. Malformed input is a client error (400); every other failure means
"this sign-in is not accepted" (401). The ``description`` names the check that failed and why,
in words safe to show a client: it never echoes message content or secrets.
"""

from __future__ import annotations


class SiweError(Exception):
    """Base class: a SIWE message or signature was refused."""

    code: str = "siwe_error"
    status: int = 401

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class MalformedMessage(SiweError):
    """The text (or the fields given to the builder) does not follow the EIP-4361 ABNF."""

    code = "malformed_message"
    status = 400


class MalformedSignature(SiweError):
    """The signature is not a well-formed 65-byte EIP-191 secp256k1 signature."""

    code = "malformed_signature"
    status = 400


class InvalidSignature(SiweError):
    """The signature is well formed but was not made by the message's address."""

    code = "invalid_signature"


class ExpiredMessage(SiweError):
    """The message's Expiration Time has passed."""

    code = "expired_message"


class NotYetValid(SiweError):
    """The message's Not Before time has not been reached."""

    code = "not_yet_valid"


class IssuedInFuture(SiweError):
    """The message's Issued At lies further in the future than the allowed clock skew."""

    code = "issued_in_future"


class MessageTooOld(SiweError):
    """The message's Issued At is older than the relying party accepts."""

    code = "message_too_old"


class DomainMismatch(SiweError):
    """The message's domain is not the expected authority, or carries userinfo."""

    code = "domain_mismatch"


class SchemeMismatch(SiweError):
    """The message's scheme (https when absent) is not the expected one."""

    code = "scheme_mismatch"


class UriMismatch(SiweError):
    """The message's URI is not the expected one."""

    code = "uri_mismatch"


class ChainNotAllowed(SiweError):
    """The message's Chain ID is not one the relying party accepts."""

    code = "chain_not_allowed"


class NonceMismatch(SiweError):
    """The message's Nonce is not the one the relying party issued."""

    code = "nonce_mismatch"
