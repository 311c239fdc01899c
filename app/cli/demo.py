"""``portcullis demo``: a complete wallet sign-in against a running server, every step printed.

A throwaway wallet (eth-account) asks for a nonce, signs the EIP-4361 message the server expects, trades it
for tokens, checks the ID token against the published JWKS, calls UserInfo and rotates the refresh token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from eth_account import Account
from eth_account.messages import encode_defunct


def _step(title: str, value: Any) -> None:
    print(f"\n== {title}")
    print(value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True))


def build_message(offer: dict[str, Any], address: str, statement: str | None = None) -> str:
    """The EIP-4361 text for the values the server asked for."""
    # An explicit scheme (EIP-4361 erratum): without it a verifier must assume https.
    lines = [
        f"{offer['scheme']}://{offer['domain']} wants you to sign in with your Ethereum account:",
        address,
        "",
    ]
    if statement:
        lines += [statement, ""]
    else:
        lines += [""]
    lines += [
        f"URI: {offer['uri']}",
        "Version: 1",
        f"Chain ID: {offer['chain_id']}",
        f"Nonce: {offer['nonce']}",
        f"Issued At: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z",
        f"Expiration Time: {offer['expiration_time']}",
    ]
    return "\n".join(lines)


def run_demo(base_url: str, *, client_id: str, grant: Callable[[str], int] | None = None) -> int:
    """``grant`` puts the wallet on the development registry (``portcullis registry grant``) when the
    server runs the embedded chain, where sign-in requires an eligible registry record."""
    wallet = Account.create()
    ask: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=10) as http:
        _step("throwaway wallet", wallet.address)
        dev = http.get("/dev/chain/info")
        if dev.status_code == 200 and grant is not None:
            _step(
                "development chain: the registry must list the wallet (portcullis registry grant ...)",
                dev.json()["registry"],
            )
            if grant(wallet.address) != 0:
                return 1
            ask = {
                "scope": "openid compliance"
            }  # the scope that releases the claim (docs/POLICY.md, "Claims")
        config = http.get("/.well-known/openid-configuration").raise_for_status().json()
        _step("discovery (issuer, jwks_uri)", {"issuer": config["issuer"], "jwks_uri": config["jwks_uri"]})

        offer = http.post("/siwe/nonce", json={"client_id": client_id}).raise_for_status().json()
        _step("POST /siwe/nonce", offer)

        message = build_message(offer, wallet.address, "Sign in to the Portcullis demo.")
        _step("message to sign (EIP-4361)", message)
        signature = "0x" + wallet.sign_message(encode_defunct(text=message)).signature.hex().removeprefix(
            "0x"
        )
        _step("signature (EIP-191 personal_sign)", signature)

        reply = http.post(
            "/siwe/verify", json={"message": message, "signature": signature, "client_id": client_id, **ask}
        )
        if reply.status_code != 200:
            _step(f"POST /siwe/verify failed ({reply.status_code})", reply.json())
            return 1
        tokens = reply.json()
        shown = {k: (v[:16] + "..." if k.endswith("token") else v) for k, v in tokens.items()}
        _step("POST /siwe/verify -> tokens (shortened)", shown)

        jwks = http.get(config["jwks_uri"]).raise_for_status().json()
        header = jwt.get_unverified_header(tokens["id_token"])
        key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        id_claims = jwt.decode(
            tokens["id_token"],
            jwt.PyJWK(key).key,
            algorithms=[key["alg"]],
            audience=client_id,
            issuer=config["issuer"],
        )
        _step("ID token claims (signature checked against the JWKS)", id_claims)
        _step("access token claims", jwt.decode(tokens["access_token"], options={"verify_signature": False}))

        info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        _step("GET /userinfo", info.raise_for_status().json())

        refreshed = (
            http.post(
                "/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "client_id": client_id,
                },
            )
            .raise_for_status()
            .json()
        )
        _step(
            "POST /token (refresh_token, rotated)",
            {"scope": refreshed["scope"], "expires_in": refreshed["expires_in"]},
        )
    print("\nsign-in complete")
    return 0
