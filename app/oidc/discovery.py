"""OpenID Connect Discovery 1.0 and RFC 8414 authorization server metadata.

Only what is implemented is advertised. There is no authorization endpoint yet (the authorization-code
flow with PAR and PKCE arrives with the FAPI 2.0 work), so ``authorization_endpoint`` is absent and
``response_types_supported`` is empty; wallets sign in through the SIWE endpoints named below.
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
]


CONFIDENTIAL_AUTH = ["private_key_jwt", "client_secret_basic", "client_secret_post"]


def metadata(settings: Settings, policy: Policy) -> dict[str, Any]:
    base = settings.issuer
    return {
        "issuer": base,
        "jwks_uri": f"{base}/jwks",
        "token_endpoint": f"{base}/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "introspection_endpoint": f"{base}/introspect",
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_AUTH,
        "revocation_endpoint": f"{base}/revoke",
        "revocation_endpoint_auth_methods_supported": [*CONFIDENTIAL_AUTH, "none"],
        "end_session_endpoint": f"{base}/logout",
        "siwe_nonce_endpoint": f"{base}/siwe/nonce",
        "siwe_verify_endpoint": f"{base}/siwe/verify",
        "scopes_supported": policy.scopes_supported(),
        "authorization_details_types_supported": policy.authorization_details_types_supported(),
        "response_types_supported": [],
        "grant_types_supported": ["refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "amr_values_supported": ["siwe", "otp", "hwk", "user", "mfa"],
        "acr_values_supported": ["urn:portcullis:acr:wallet", "urn:portcullis:acr:wallet+mfa"],
        "siwe_chain_ids_supported": list(settings.chain_ids),
    }
