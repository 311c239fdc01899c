"""RFC 6749 section 5.2 error responses: one class per error code, rendered as JSON by the HTTP face.

Each error carries the HTTP status the spec assigns, a client-safe ``description`` and, optionally, a
``debug`` part that is logged but never sent. Core code raises these; it never raises framework exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence


class OAuthError(Exception):
    """Base class. ``error`` is the registered (or extension, RFC 6749 section 8.5) error code."""

    error: str = "server_error"
    status: int = 500
    # May the error be sent to the client's redirect_uri (authorization endpoint errors only)?
    redirectable: bool = False

    def __init__(self, description: str, *, debug: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.debug = debug

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(OAuthError):
    """The request is missing a parameter, repeats one or is otherwise malformed."""

    error = "invalid_request"
    status = 400


class InvalidClient(OAuthError):
    """Client authentication failed or the client is unknown (RFC 6749 section 5.2: 401)."""

    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    """The grant (refresh token, signed message) is invalid, expired, revoked or issued to another client."""

    error = "invalid_grant"
    status = 400


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    status = 400


class InvalidScope(OAuthError):
    error = "invalid_scope"
    status = 400


class InvalidClientMetadata(OAuthError):
    """RFC 7591 section 3.2.2: a client metadata field is invalid, or the fields contradict each other."""

    error = "invalid_client_metadata"
    status = 400


class InvalidRedirectUri(OAuthError):
    """RFC 7591 section 3.2.2: one or more of the redirection URIs is invalid."""

    error = "invalid_redirect_uri"
    status = 400


def quoted(text: str) -> str:
    """A value safe inside an RFC 9110 quoted-string: no quotes, backslashes or control characters."""
    return "".join(c for c in text.replace('"', "'") if c != "\\" and c.isprintable())


class InvalidToken(OAuthError):
    """RFC 6750 section 3.1: the access token is expired, revoked, malformed or invalid."""

    error = "invalid_token"
    status = 401

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer error="invalid_token", error_description="{quoted(self.description)}"'
        return {"WWW-Authenticate": challenge}


class NotFound(OAuthError):
    """The named resource (a delegation) does not exist, or not for this caller."""

    error = "not_found"
    status = 404


class MissingToken(OAuthError):
    """RFC 6750 section 3.1: no credentials were sent; the challenge carries no error code."""

    error = "invalid_request"
    status = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


class SignInRejected(OAuthError):
    """A Sign-In with Ethereum check failed; ``error`` names the check (extension codes, see docs/API.md)."""

    def __init__(self, error: str, status: int, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.status = status


class InsufficientUserAuthentication(OAuthError):
    """RFC 9470 section 3: the authentication is too weak (``acr_values``) or too old (``max_age``)."""

    error = "insufficient_user_authentication"
    status = 401

    def __init__(
        self,
        description: str = "a different authentication level is required",
        *,
        acr_values: Sequence[str] = (),
        max_age: int | None = None,
        debug: str | None = None,
    ) -> None:
        if not acr_values and max_age is None:
            raise ValueError("insufficient_user_authentication must say what would do: acr_values or max_age")
        super().__init__(description, debug=debug)
        self.acr_values = tuple(acr_values)
        self.max_age = max_age

    def to_json(self) -> dict[str, str]:
        body = super().to_json()
        if self.acr_values:
            body["acr_values"] = " ".join(self.acr_values)
        if self.max_age is not None:
            body["max_age"] = str(self.max_age)
        return body

    def headers(self) -> dict[str, str]:
        parts = [f'Bearer error="{self.error}"', f'error_description="{quoted(self.description)}"']
        if self.acr_values:
            parts.append(f'acr_values="{quoted(" ".join(self.acr_values))}"')
        if self.max_age is not None:
            parts.append(f'max_age="{self.max_age}"')
        return {"WWW-Authenticate": ", ".join(parts)}


class ServerError(OAuthError):
    error = "server_error"
    status = 500


# RFC 9110 section 10.2.3: how long a client should wait before retrying a 503 (whole seconds). The HTTP
# face replaces it with PORTCULLIS_RETRY_AFTER_SECONDS; this default covers errors rendered elsewhere.
DEFAULT_RETRY_AFTER_SECONDS = 5


class TemporarilyUnavailable(OAuthError):
    """A required dependency (database, chain) is down: fail closed, and say when to try again."""

    error = "temporarily_unavailable"
    status = 503

    def __init__(
        self, description: str, *, debug: str | None = None, retry_after: int = DEFAULT_RETRY_AFTER_SECONDS
    ) -> None:
        super().__init__(description, debug=debug)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, self.retry_after))}


class RequestTimeout(OAuthError):
    """RFC 9110 section 15.5.9: the client did not send its whole request in time. ``request_timeout`` is an
    extension code (RFC 6749 section 8.5); the connection is closed after the answer."""

    error = "request_timeout"
    status = 408

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class UnauthorizedClient(OAuthError):
    """RFC 6749 section 5.2: the client may not use this grant type (or response type)."""

    error = "unauthorized_client"
    status = 400


class UnsupportedResponseType(OAuthError):
    """RFC 6749 section 4.1.2.1: only ``code`` is supported."""

    error = "unsupported_response_type"
    status = 400


class AccessDenied(OAuthError):
    """RFC 6749 section 4.1.2.1: the user (or the server's policy) refused the request."""

    error = "access_denied"
    status = 403


class LoginRequired(OAuthError):
    """OIDC Core 3.1.2.6: ``prompt=none`` but the user must sign in (there are no silent sessions here)."""

    error = "login_required"
    status = 400


class InvalidTarget(OAuthError):
    """RFC 8707 section 2: the ``resource`` is not an absolute URI without a fragment, or not acceptable."""

    error = "invalid_target"
    status = 400


class RequestNotSupported(OAuthError):
    """OIDC Core 6: request objects (``request``) are not supported; push the request instead (RFC 9126)."""

    error = "request_not_supported"
    status = 400


class InvalidRequestUri(OAuthError):
    """RFC 9126 section 4: the ``request_uri`` is unknown, used, expired or another client's."""

    error = "invalid_request_uri"
    status = 400
