"""A chain RPC that is black-holed (accepts, never answers): a smart-contract wallet's signature cannot be
checked, which is 503 with Retry-After within about 2 s (PORTCULLIS_CHAINS[].signature_timeout_seconds),
never 401 invalid_signature; an EOA on a chain without a required on-chain source still signs in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.anvil import Anvil, deploy
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text
from tests.wallets.blackhole import BlackHoleProxy


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


@pytest.fixture
def proxy(chain: Anvil) -> Iterator[BlackHoleProxy]:
    with BlackHoleProxy(chain.url) as hole:
        yield hole


@pytest.fixture
async def h(proxy: BlackHoleProxy, tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    # No compliance source on this chain: the RPC serves only contract-wallet signatures. The per-attempt
    # RPC timeout stays at its 5 s default; the signature check has its own, shorter bound (default 2 s).
    chains = [{"chain_id": 31337, "rpc_urls": [proxy.url]}]
    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chains)
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def attempt(h: Harness, address: str, signer: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, address, issued_at=h.clock.now())
    return await h.client.post("/siwe/verify", json={"message": message, "signature": sign(signer, message)})


async def test_black_holed_rpc_is_503_within_2_s_and_eoas_go_on(
    h: Harness, chain: Anvil, proxy: BlackHoleProxy
) -> None:
    owner = Account.create()
    wallet = deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0])
    # Through the proxy while it forwards: the contract wallet's signature checks out.
    assert (await attempt(h, wallet.address, owner)).status_code == 200

    proxy.black_hole = True
    started = time.monotonic()
    reply = await attempt(h, wallet.address, owner)
    elapsed = time.monotonic() - started
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"] == "temporarily_unavailable"
    assert int(reply.headers["Retry-After"]) >= 1
    assert "access_token" not in reply.text
    assert elapsed < 2.5, f"answered after {elapsed:.1f} s"

    eoa = Account.create()
    started = time.monotonic()
    assert (await attempt(h, eoa.address, eoa)).status_code == 200
    assert time.monotonic() - started < 2.5
