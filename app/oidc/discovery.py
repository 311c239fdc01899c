"""OpenID Connect Discovery 1.0 and RFC 8414 authorization server metadata.

Only what is implemented is advertised: the authorization-code flow with PAR (RFC 9126), PKCE S256,
DPoP (RFC 9449) and the RFC 9207 ``iss`` response parameter; client credentials; refresh; and the SIWE
endpoints for wallets that sign in directly.
"""

from __future__ import annotations

from typing import Any

from app.policy.model import Policy
from app.settings import Settings

CLAIMS_SUPPORTED = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "jti",
    "nonce",
    "amr",
    "azp",
    "acr",
    "at_hash",
    "scope",
    "client_id",
    "wallet_address",
    "chain_id",
    "compliance",  # only for a scope that asks for it (docs/POLICY.md, "Claims")
]


CONFIDENTIAL_AUTH = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
# Client assertions and DPoP proofs: asymmetric only; `none` and HMAC are never accepted.
JWS_ALGS = ["ES256", "EdDSA", "PS256"]


def metadata(settings: Settings, policy: Policy) -> dict[str, Any]:
    base = settings.issuer
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "pushed_authorization_request_endpoint": f"{base}/par",
        "require_pushed_authorization_requests": settings.require_par,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
        "userinfo_endpoint": f"{base}/userinfo",
        "introspection_endpoint": f"{base}/introspect",
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH,
        "introspection_endpoint_auth_signing_alg_values_supported": JWS_ALGS,
        "revocation_endpoint": f"{base}/revoke",
        "revocation_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": JWS_ALGS,
        "end_session_endpoint": f"{base}/logout",
        "siwe_nonce_endpoint": f"{base}/siwe/nonce",
        "siwe_verify_endpoint": f"{base}/siwe/verify",
        "scopes_supported": policy.scopes_supported(),
        "authorization_details_types_supported": policy.authorization_details_types_supported(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",  # RFC 7523 2.1: bots under a delegation
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
        "token_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH, "none"],
        "token_endpoint_auth_signing_alg_values_supported": JWS_ALGS,
        "dpop_signing_alg_values_supported": JWS_ALGS,
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "amr_values_supported": ["siwe", "otp", "hwk", "user", "mfa"],
        "acr_values_supported": ["urn:portcullis:acr:wallet", "urn:portcullis:acr:wallet+mfa"],
        "siwe_chain_ids_supported": list(settings.chain_ids),
        **({"registration_endpoint": f"{base}/register"} if settings.registration_enabled else {}),
    }
