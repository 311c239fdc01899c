"""Policy errors: a bad policy file, RFC 9396 section 5 ``invalid_authorization_details``, RFC 9470
section 3 ``insufficient_user_authentication``, and RFC 6749 section 4.1.2.1 ``access_denied`` when nothing
can be issued.

The OAuth ones subclass ``app.errors.OAuthError``, so the HTTP face renders them like every other OAuth error.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.errors import InsufficientUserAuthentication as InsufficientUserAuthentication  # re-exported
from app.errors import OAuthError


class PolicyError(ValueError):
    """The policy file cannot be used. Each problem reads ``{source}:{line}: {problem}``; the message holds
    them all, one per line, and ``problems`` keeps them apart."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class InvalidAuthorizationDetails(OAuthError):
    """RFC 9396 section 5: an unknown type, an unknown field, a field of the wrong type or value, or a missing
    required field. ``field`` is the JSON path of the offending member, e.g.
    ``authorization_details[0].actions``.
    """

    error = "invalid_authorization_details"
    status = 400
    redirectable = True

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PolicyDenied(OAuthError):
    """RFC 6749 section 4.1.2.1 ``access_denied``: the policy refuses everything asked (or ``openid`` itself),
    so there is nothing to issue. The description lists the refusals."""

    error = "access_denied"
    status = 403
    redirectable = True
