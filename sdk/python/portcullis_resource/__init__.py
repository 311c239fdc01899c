"""portcullis-resource: validate Portcullis access tokens in a resource server (docs/RESOURCE_SERVER.md).

RFC 9068 JWT access tokens, RFC 9449 DPoP, RFC 6750 / RFC 9470 challenges, RFC 9396 authorization details
and RFC 7662 introspection. The Starlette glue is in ``portcullis_resource.starlette`` (the extra).
"""

from portcullis_resource.authz import require_acr, require_detail, require_scope
from portcullis_resource.dpop import Nonces
from portcullis_resource.errors import (
    InsufficientAuthorizationDetails,
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    ResourceError,
    TemporarilyUnavailable,
    UseDpopNonce,
)
from portcullis_resource.introspection import ClientAuth
from portcullis_resource.replay import MemoryReplayStore, RedisReplayStore, ReplayStore
from portcullis_resource.tokens import AccessToken, Compliance
from portcullis_resource.validator import Validator

__all__ = [
    "AccessToken",
    "ClientAuth",
    "Compliance",
    "InsufficientAuthorizationDetails",
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "InvalidDpopProof",
    "InvalidRequest",
    "InvalidToken",
    "MemoryReplayStore",
    "MissingToken",
    "Nonces",
    "RedisReplayStore",
    "ReplayStore",
    "ResourceError",
    "TemporarilyUnavailable",
    "UseDpopNonce",
    "Validator",
    "require_acr",
    "require_detail",
    "require_scope",
]
