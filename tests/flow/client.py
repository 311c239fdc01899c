"""A scripted relying party and wallet for the authorization-code flow: the same HTTP calls the hosted page
and a FAPI 2.0 client make, written out by hand (independent of the server's own helpers).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import sign

_VIEW = re.compile(r'<script type="application/json" id="portcullis-interaction"[^>]*>(.*?)</script>', re.S)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Key:
    """An ES256 key pair with its public JWK and RFC 7638 thumbprint."""

    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    @property
    def public_jwk(self) -> dict[str, str]:
        return {**self.jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    @property
    def thumbprint(self) -> str:
        members = json.dumps(self.jwk, sort_keys=True, separators=(",", ":"))
        return b64url(hashlib.sha256(members.encode()).digest())


def pkce_pair() -> tuple[str, str]:
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def client_assertion(key: Key, client_id: str, audience: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": audience, "jti": secrets.token_urlsafe(16)}
    body |= {"iat": now, "exp": now + 60, **claims}
    return jwt.encode(body, key.private, algorithm="ES256", headers={"kid": key.kid})


def dpop_proof(
    key: Key, htm: str, htu: str, *, access_token: str | None = None, nonce: str | None = None, **over: Any
) -> str:
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": htm,
        "htu": htu,
        "iat": int(time.time()),
    }
    if access_token is not None:
        claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
    if nonce is not None:
        claims["nonce"] = nonce
    claims.update(over)
    headers = {"typ": "dpop+jwt", "jwk": key.jwk}
    return jwt.encode(claims, key.private, algorithm="ES256", headers=headers)


def write_clients(path: Path, clients: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(clients))
    return path


def fapi_client(client_id: str, key: Key, redirect_uri: str, **over: Any) -> dict[str, Any]:
    """A FAPI 2.0 confidential client: private_key_jwt, PAR and DPoP required."""
    return {
        "client_id": client_id,
        "client_name": "Perps dApp",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk]},
        "dpop_bound_access_tokens": True,
        "require_pushed_authorization_requests": True,
        **over,
    }


def secret_client(
    client_id: str, secret: str, redirect_uris: list[str], method: str = "client_secret_basic", **over: Any
) -> dict[str, Any]:
    """A confidential client authenticating with a shared secret (``method``: basic or post)."""
    return {
        "client_id": client_id,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": method,
        "client_secret": secret,
        **over,
    }


def service_client(client_id: str, key: Key, scope: str) -> dict[str, Any]:
    """A backend using client_credentials with private_key_jwt: no redirect, no wallet."""
    return {
        "client_id": client_id,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.public_jwk]},
        "scope": scope,
    }


@dataclass
class Flow:
    """One relying party talking to the server through ``http`` (an httpx client with a cookie jar)."""

    http: httpx.AsyncClient
    issuer: str
    client_id: str
    redirect_uri: str
    key: Key | None = None  # private_key_jwt key; None for secret or public clients
    dpop: Key | None = None
    auth: dict[str, str] = field(default_factory=dict)  # extra auth form fields or headers (secret clients)
    auth_headers: dict[str, str] = field(default_factory=dict)

    def client_auth(self) -> dict[str, str]:
        if self.key is not None:
            return {
                "client_id": self.client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": client_assertion(self.key, self.client_id, self.issuer),
            }
        return {"client_id": self.client_id, **self.auth}

    def dpop_header(self, htm: str, path: str, **kw: Any) -> dict[str, str]:
        if self.dpop is None:
            return {}
        return {"DPoP": dpop_proof(self.dpop, htm, f"{self.issuer}{path}", **kw)}

    async def push(self, **params: str) -> httpx.Response:
        return await self.http.post(
            "/par",
            data={**self.client_auth(), **params},
            headers={**self.auth_headers, **self.dpop_header("POST", "/par")},
        )

    async def open_page(self, query: dict[str, str]) -> httpx.Response:
        return await self.http.get("/authorize", params=query)

    async def token(self, form: dict[str, str], *, dpop: bool = True, **kw: Any) -> httpx.Response:
        headers = {**self.auth_headers, **(self.dpop_header("POST", "/token", **kw) if dpop else {})}
        return await self.http.post("/token", data={**self.client_auth(), **form}, headers=headers)


def page_view(page: httpx.Response) -> dict[str, Any]:
    found = _VIEW.search(page.text)
    assert found, page.text[:500]
    view: dict[str, Any] = json.loads(found.group(1))
    return view


def page_headers(view: dict[str, Any]) -> dict[str, str]:
    """What the page's script sends with its calls: the CSRF token it was rendered with (app/http/csrf.py)."""
    return {"X-CSRF-Token": view["csrf_token"]}


def siwe_message(view: dict[str, Any], address: str, chain_id: int | None = None) -> str:
    """The EIP-4361 text the hosted page builds from its view."""
    s = view["siwe"]
    return "\n".join(
        [
            f"{s['scheme']}://{s['domain']} wants you to sign in with your Ethereum account:",
            address,
            "",
            s["statement"],
            "",
            f"URI: {s['uri']}",
            "Version: 1",
            f"Chain ID: {chain_id if chain_id is not None else s['chain_ids'][0]}",
            f"Nonce: {s['nonce']}",
            f"Issued At: {s['issued_at']}",
            f"Expiration Time: {s['expiration_time']}",
        ]
    )


async def wallet_signs(
    http: httpx.AsyncClient, view: dict[str, Any], wallet: Any, **extra: Any
) -> httpx.Response:
    message = siwe_message(view, wallet.address)
    body = {"message": message, "signature": sign(wallet, message), **extra}
    return await http.post(view["endpoints"]["signin"], json=body, headers=page_headers(view))


def redirect_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Authorized:
    code: str
    state: str
    nonce: str
    verifier: str
    params: dict[str, str]
    view: dict[str, Any] = field(default_factory=dict)  # the page's interaction view, before the signature
    consent: dict[str, Any] = field(default_factory=dict)  # what the consent screen showed


async def authorize(
    flow: Flow, wallet: Any, *, pushed: bool = True, approve: bool = True, **extra: str
) -> Authorized:
    """PAR (or a plain request), the page, the wallet signature and consent; returns the code."""
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    params = {
        "response_type": "code",
        "client_id": flow.client_id,
        "redirect_uri": flow.redirect_uri,
        "scope": "openid",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    if pushed:
        pushed_reply = await flow.push(**params)
        assert pushed_reply.status_code == 201, pushed_reply.text
        query = {"client_id": flow.client_id, "request_uri": pushed_reply.json()["request_uri"]}
    else:
        query = params
    page = await flow.open_page(query)
    assert page.status_code == 200, page.text[:500]
    view = page_view(page)
    signed = await wallet_signs(flow.http, view, wallet)
    assert signed.status_code == 200, signed.text
    decided = await flow.http.post(
        view["endpoints"]["consent"], json={"approve": approve}, headers=page_headers(view)
    )
    assert decided.status_code == 200, decided.text
    location = decided.json()["redirect_to"]
    assert location.split("?")[0] == flow.redirect_uri.split("?")[0], location
    got = redirect_params(location)
    consent = signed.json().get("consent", {})
    return Authorized(got.get("code", ""), state, nonce, verifier, got, view, consent)
