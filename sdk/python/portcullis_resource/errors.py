"""RFC 6750 section 3 and RFC 9449 section 7.1 challenges: one class per error code a resource server returns.

Every refusal is a :class:`ResourceError` carrying its HTTP status, its ``error`` code, a client-safe
description and what the ``WWW-Authenticate`` challenge must add (``scope``, RFC 9470 ``acr_values`` and
``max_age``). The scheme of the challenge is ``DPoP`` when the request used or needed DPoP, else ``Bearer``.
"""

from __future__ import annotations

from collections.abc import Iterable


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ResourceError(Exception):
    """A refused request. ``error`` is None for RFC 6750 section 3.1's "no authentication was attempted"."""

    status: int = 401
    error: str | None = "invalid_token"

    def __init__(self, description: str, *, dpop: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.dpop = dpop  # challenge with the DPoP scheme (the token is, or must be, DPoP-bound)
        self.params: dict[str, str] = {}
        self.headers: dict[str, str] = {}

    def challenge(self, realm: str | None = None, dpop_algs: Iterable[str] = ()) -> str:
        """The ``WWW-Authenticate`` value: the scheme's challenge with error, description and params."""
        parts: list[str] = []
        if realm:
            parts.append(f"realm={_quote(realm)}")
        if self.error is not None:
            parts.append(f"error={_quote(self.error)}")
            parts.append(f"error_description={_quote(_printable(self.description))}")
        parts += [f"{k}={_quote(v)}" for k, v in self.params.items()]
        algs = " ".join(dpop_algs)
        if self.dpop:
            if algs:
                parts.append(f"algs={_quote(algs)}")
            return "DPoP " + ", ".join(parts)
        bearer = "Bearer " + ", ".join(parts) if parts else "Bearer"
        if self.error is None and algs:
            # No credentials at all: both schemes are offered (RFC 9449 section 7.1).
            dpop_challenge = f"DPoP algs={_quote(algs)}"
            if realm:
                dpop_challenge = f"DPoP realm={_quote(realm)}, algs={_quote(algs)}"
            return f"{bearer}, {dpop_challenge}"
        return bearer

    def body(self) -> dict[str, str]:
        if self.error is None:
            return {"error": "unauthorized", "error_description": self.description}
        return {"error": self.error, "error_description": self.description, **self.params}


def _printable(text: str) -> str:
    # RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "'" for c in text)[:300]


class MissingToken(ResourceError):
    """RFC 6750 section 3.1: the request carried no access token; the challenge has no error code."""

    status = 401
    error = None


class InvalidRequest(ResourceError):
    status = 400
    error = "invalid_request"


class InvalidToken(ResourceError):
    status = 401
    error = "invalid_token"


class InsufficientScope(ResourceError):
    status = 403
    error = "insufficient_scope"

    def __init__(self, description: str, scope: str, *, dpop: bool = False) -> None:
        super().__init__(description, dpop=dpop)
        self.params["scope"] = scope


class InsufficientAuthorizationDetails(ResourceError):
    """RFC 9396: the token's ``authorization_details`` do not cover this request; ``field`` names why."""

    status = 403
    error = "insufficient_authorization_details"

    def __init__(self, description: str, field: str, *, dpop: bool = False) -> None:
        super().__init__(description, dpop=dpop)
        self.field = field


class InsufficientUserAuthentication(ResourceError):
    """RFC 9470 section 3: step up through the authorization server with these ``acr_values``/``max_age``."""

    status = 401
    error = "insufficient_user_authentication"

    def __init__(
        self, description: str, *, acr_values: str | None, max_age: int | None, dpop: bool = False
    ) -> None:
        super().__init__(description, dpop=dpop)
        if acr_values:
            self.params["acr_values"] = acr_values
        if max_age is not None:
            self.params["max_age"] = str(max_age)


class InvalidDpopProof(ResourceError):
    """RFC 9449 section 7.1."""

    status = 401
    error = "invalid_dpop_proof"

    def __init__(self, description: str) -> None:
        super().__init__(description, dpop=True)


class UseDpopNonce(ResourceError):
    """RFC 9449 section 9: retry with the nonce of the ``DPoP-Nonce`` header."""

    status = 401
    error = "use_dpop_nonce"

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description, dpop=True)
        self.headers["DPoP-Nonce"] = nonce


class TemporarilyUnavailable(ResourceError):
    """The authorization server could not be asked (discovery, JWKS or introspection): fail closed."""

    status = 503
    error = "temporarily_unavailable"
