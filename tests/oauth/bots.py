"""A trading bot and its wallet for the delegation tests: the EIP-4361 + EIP-5573 message written out by
hand, the bot's RFC 7523 assertion and RFC 9449 proofs (P-256 or Ed25519), the three HTTP calls."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.conftest import Harness, sign, siwe_text

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PREAMBLE = "I further authorize the stated URI to perform the following actions on my behalf:"
TRADE = {
    "type": "derivatives_trade",
    "actions": ["cancel_order", "place_order"],
    "instruments": ["ETH-PERP"],
    "max_leverage": 5,
    "max_notional": {"amount": "50000", "currency": "USDC"},
}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Bot:
    """A bot's key pair: P-256 (ES256) or Ed25519 (EdDSA)."""

    kind: str = "P-256"
    private: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.private is None:
            self.private = (
                ec.generate_private_key(ec.SECP256R1())
                if self.kind == "P-256"
                else ed25519.Ed25519PrivateKey.generate()
            )

    @property
    def alg(self) -> str:
        return "ES256" if self.kind == "P-256" else "EdDSA"

    @property
    def jwk(self) -> dict[str, str]:
        if self.kind == "P-256":
            n = self.private.public_key().public_numbers()
            return {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(n.x.to_bytes(32, "big")),
                "y": b64url(n.y.to_bytes(32, "big")),
            }
        raw = self.private.public_key().public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}

    @property
    def jkt(self) -> str:
        members = json.dumps(self.jwk, sort_keys=True, separators=(",", ":"))
        return b64url(hashlib.sha256(members.encode()).digest())

    def assertion(self, issuer: str, delegation_id: str, now: datetime, **over: Any) -> str:
        claims: dict[str, Any] = {
            "iss": self.jkt,
            "sub": delegation_id,
            "aud": issuer,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + 120,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(over)
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"typ": "JWT", "jwk": self.jwk})

    def proof(self, method: str, url: str, now: datetime, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(now.timestamp()),
        }
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"typ": "dpop+jwt", "jwk": self.jwk}
        )


def recap_uri(att: dict[str, Any]) -> str:
    """A ReCap URI by hand: keys sorted, compact JSON, unpadded base64url."""
    body = json.dumps({"att": att, "prf": []}, sort_keys=True, separators=(",", ":"))
    return "urn:recap:" + b64url(body.encode())


def capabilities(scopes: list[str], details: list[dict[str, Any]]) -> dict[str, Any]:
    att: dict[str, Any] = {f"urn:portcullis:scope:{s}": {"oauth/token": [{}]} for s in scopes}
    for d in details:
        note = {k: v for k, v in d.items() if k not in ("type", "actions")}
        att[f"urn:portcullis:authorization_details:{d['type']}"] = {
            f"{d['type']}/{a}": [note] for a in d["actions"]
        }
    return att


def translation(att: dict[str, Any]) -> str:
    out, n = [PREAMBLE], 1
    for resource in sorted(att):
        groups: dict[str, list[str]] = {}
        for ability in sorted(att[resource]):
            ns, _, name = ability.partition("/")
            groups.setdefault(ns, []).append(name)
        for ns, names in groups.items():
            out.append(f" ({n}) '{ns}': {', '.join(repr(x) for x in names)} for '{resource}'.")
            n += 1
    return "".join(out)


async def delegation_message(
    h: Harness,
    address: str,
    bot: Bot,
    *,
    scopes: list[str] | None = None,
    details: list[dict[str, Any]] | None = None,
    lasts: timedelta = timedelta(days=7),
    statement_att: dict[str, Any] | None = None,
) -> str:
    offer = (await h.client.post("/siwe/nonce")).json()
    att = capabilities(["perps:trade"] if scopes is None else scopes, [TRADE] if details is None else details)
    now = h.clock.now()
    statement = "Let my bot trade. " + translation(statement_att or att)
    text = siwe_text(
        {**offer, "uri": f"urn:ietf:params:oauth:jwk-thumbprint:sha-256:{bot.jkt}"},
        address,
        issued_at=now,
        statement=statement,
        expiration_time=(now + lasts).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return text + "\nResources:\n- " + recap_uri(att)


async def delegate(h: Harness, account: Any, bot: Bot, **kw: Any) -> Any:
    text = await delegation_message(h, account.address, bot, **kw)
    return await h.client.post("/delegations", json={"message": text, "signature": sign(account, text)})


async def bot_token(
    h: Harness, bot: Bot, delegation_id: str, *, assertion: str | None = None, proof_by: Bot | None = None
) -> Any:
    url = f"{h.settings.issuer}/token"
    now = h.clock.now()
    form = {
        "grant_type": JWT_BEARER,
        "assertion": assertion or bot.assertion(h.settings.issuer, delegation_id, now),
    }
    return await h.client.post(
        "/token", data=form, headers={"DPoP": (proof_by or bot).proof("POST", url, now)}
    )
