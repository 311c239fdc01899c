"""RFC 9449 section 8: with PORTCULLIS_DPOP_NONCES the token and PAR endpoints require a server nonce in
the proof; a proof without it (or with a stale one) gets use_dpop_nonce and the current nonce in the
DPoP-Nonce header, and nothing is issued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.oauth import dpop_nonce
from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.flow.client import Flow, Key, client_assertion, dpop_proof, pkce_pair, write_clients

ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def rp_key() -> Key:
    return Key()


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str, rp_key: Key) -> AsyncIterator[Harness]:
    clients = write_clients(
        tmp_path / "clients.json",
        [
            {
                "client_id": "risk-engine",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [rp_key.public_jwk]},
                "dpop_bound_access_tokens": True,
            },
            {
                "client_id": "perps-dapp",
                "redirect_uris": ["https://dapp.example/cb"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [rp_key.public_jwk]},
            },
        ],
    )
    settings = make_settings(tmp_path, database_url=sqlite_url, clients_file=clients, dpop_nonces=True)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


def auth(key: Key, client_id: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion(key, client_id, ISSUER),
    }


async def token(h: Harness, rp_key: Key, dpop: Key, **kw: Any) -> Any:
    now = int(h.clock.now().timestamp())
    proof = dpop_proof(dpop, "POST", f"{ISSUER}/token", iat=now, **kw)
    assertion = auth(rp_key, "risk-engine")
    assertion["client_assertion"] = client_assertion(rp_key, "risk-engine", ISSUER, iat=now, exp=now + 60)
    return await h.client.post(
        "/token", data={"grant_type": "client_credentials", **assertion}, headers={"DPoP": proof}
    )


async def test_token_endpoint_asks_for_a_nonce_then_accepts_it(h: Harness, rp_key: Key) -> None:
    dpop = Key()
    first = await token(h, rp_key, dpop)
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    assert "access_token" not in first.json()
    nonce = first.headers["dpop-nonce"]
    second = await token(h, rp_key, dpop, nonce=nonce)
    assert second.status_code == 200, second.text
    assert second.json()["token_type"] == "DPoP"
    assert second.headers["dpop-nonce"]


async def test_stale_or_forged_nonce_is_refused(h: Harness, rp_key: Key) -> None:
    window = dpop_nonce.WINDOW_SECONDS
    start = int(h.clock.now().timestamp()) // window * window + 10  # 10 s into a nonce window
    h.clock.current = datetime.fromtimestamp(start, UTC)
    dpop = Key()
    nonce = (await token(h, rp_key, dpop)).headers["dpop-nonce"]
    forged = await token(h, rp_key, dpop, nonce="A" * len(nonce))
    assert forged.status_code == 400 and forged.json()["error"] == "use_dpop_nonce"
    h.clock.advance(window)  # the next window: the previous window's nonce is still accepted
    assert (await token(h, rp_key, dpop, nonce=nonce)).status_code == 200
    h.clock.advance(window)  # two windows on it is stale
    stale = await token(h, rp_key, dpop, nonce=nonce)
    assert stale.status_code == 400 and stale.json()["error"] == "use_dpop_nonce"
    assert "access_token" not in stale.json() and stale.headers["dpop-nonce"] != nonce


async def test_par_also_requires_the_nonce(h: Harness, rp_key: Key) -> None:
    flow = Flow(h.client, ISSUER, "perps-dapp", "https://dapp.example/cb", key=rp_key, dpop=Key())
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "redirect_uri": "https://dapp.example/cb",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    refused = await flow.push(**params)
    assert refused.status_code == 400 and refused.json()["error"] == "use_dpop_nonce"
    assert "request_uri" not in refused.json()
    assert flow.dpop is not None
    proof = dpop_proof(flow.dpop, "POST", f"{ISSUER}/par", nonce=refused.headers["dpop-nonce"])
    pushed = await h.client.post("/par", data={**flow.client_auth(), **params}, headers={"DPoP": proof})
    assert pushed.status_code == 201, pushed.text
