"""RFC 6585 section 4: 429 Too Many Requests, rendered as an RFC 6749 section 5.2 error body.

RFC 6749 registers no error code for rate limiting; ``rate_limited`` is an extension code
(RFC 6749 section 8.5). The ``Retry-After`` header (RFC 9110 section 10.2.3) carries whole seconds.
"""

from __future__ import annotations

import math

from app.errors import OAuthError


class RateLimited(OAuthError):
    """A rate limit refused the request; ``retry_after`` is the wait in seconds before it can succeed."""

    error = "rate_limited"
    status = 429

    def __init__(
        self, description: str, *, retry_after: float, debug: str | None = None, cause: str = "budget"
    ) -> None:
        super().__init__(description, debug=debug)
        self.retry_after = retry_after
        self.cause = cause  # "budget" (a rate limit) or "lock" (a failure-spike lock): the metric's label

    def headers(self) -> dict[str, str]:
        # Round up: a client that waits the advertised time must find the budget refilled.
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}
