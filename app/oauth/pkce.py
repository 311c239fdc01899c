"""RFC 7636 PKCE: S256 only.

Pure functions: ``validate_challenge`` at the authorization endpoint, ``verify`` at the token endpoint.

A ``code_verifier`` sent to the token endpoint for an authorization code that was issued *without* a
``code_challenge`` must be refused by the caller (RFC 9700 section 2.1.1: it is a PKCE downgrade attempt);
``verify`` needs a stored challenge and so cannot be called for such a code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from app.errors import InvalidGrant, InvalidRequest

S256 = "S256"
# RFC 7636 section 4.1 and 4.2: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_UNRESERVED_43_128 = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def validate_challenge(challenge: str | None, method: str | None) -> str:
    """Check the authorization request's ``code_challenge`` and ``code_challenge_method``; return it.

    Raises ``InvalidRequest`` (RFC 7636 section 4.4.1) when the challenge is missing or malformed, or the
    method is anything but ``S256``.
    """
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE, RFC 7636)")
    if method is None or method == "":
        # RFC 7636 section 4.3 defaults a missing method to "plain", which we do not accept.
        raise InvalidRequest("code_challenge_method is required and must be S256; plain is not supported")
    if method == "plain":
        raise InvalidRequest(
            "code_challenge_method plain is not supported: it does not protect against a leaked "
            "authorization request; use S256"
        )
    if method != S256:
        raise InvalidRequest("code_challenge_method must be S256")
    if _UNRESERVED_43_128.fullmatch(challenge) is None:
        raise InvalidRequest("code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """Check the token request's ``code_verifier`` against the stored S256 ``challenge`` (section 4.6).

    Raises ``InvalidGrant("PKCE verification failed")`` when the verifier is missing, malformed or does not
    match. The comparison is constant time.
    """
    if not verifier:
        raise InvalidGrant("PKCE verification failed", debug="code_verifier missing")
    if _UNRESERVED_43_128.fullmatch(verifier) is None:
        raise InvalidGrant("PKCE verification failed", debug="code_verifier is not 43-128 unreserved chars")
    if not hmac.compare_digest(s256(verifier).encode("ascii"), challenge.encode("utf-8")):
        raise InvalidGrant("PKCE verification failed", debug="code_verifier does not match code_challenge")
