"""POST /siwe/verify for smart-contract wallets on a real anvil: ERC-1271 deployed, ERC-6492 counterfactual,
malicious wallets refused with 401 (never 500), RPC down is 503 (fail closed), EOAs need no RPC."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account

from app.chain.wallets import ERC6492_SUFFIX
from tests.anvil import Anvil, deploy
from tests.audit.tamper import rows
from tests.conftest import FakeClock, Harness, make_settings, running_app, sign, siwe_text


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


def chain_settings(url: str) -> list[dict[str, Any]]:
    return [{"chain_id": 31337, "rpc_urls": [url], "rpc_timeout_seconds": 3}]


@pytest.fixture
async def h(chain: Anvil, tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chain_settings(chain.url))
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def attempt(h: Harness, address: str, signer: Any, wrap: Any = None) -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    assert offer["chain_id"] == 31337
    message = siwe_text(offer, address, issued_at=h.clock.now())
    signature = sign(signer, message)
    if wrap is not None:
        signature = "0x" + wrap(bytes.fromhex(signature[2:])).hex()
    return await h.client.post("/siwe/verify", json={"message": message, "signature": signature})


async def test_deployed_erc1271_wallet_signs_in(h: Harness, chain: Anvil) -> None:
    owner = Account.create()
    wallet = deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0])
    reply = await attempt(h, wallet.address, owner)
    assert reply.status_code == 200, reply.text
    log = await rows(h.app.state.provider.store.engine)
    assert json.loads(log[-1]["data"])["wallet"] == "contract"
    assert log[-1]["actor"] == f"did:pkh:eip155:31337:{wallet.address}"


async def test_counterfactual_erc6492_wallet_signs_in(h: Harness, chain: Anvil) -> None:
    owner = Account.create()
    factory = deploy(chain.w3, "OwnedWalletFactory", sender=chain.accounts[0])
    salt = b"\x07" * 32
    address = factory.functions.walletAddress(owner.address, salt).call()
    calldata = bytes.fromhex(factory.encode_abi("deployWallet", args=[owner.address, salt])[2:])

    def wrap(inner: bytes) -> bytes:
        return encode(["address", "bytes", "bytes"], [factory.address, calldata, inner]) + ERC6492_SUFFIX

    reply = await attempt(h, address, owner, wrap)
    assert reply.status_code == 200, reply.text
    assert chain.w3.eth.get_code(address) == b""


@pytest.mark.parametrize("artifact", ["RevertingWallet", "GasBurningWallet", "WrongMagicWallet", None])
async def test_bad_contract_wallets_get_401(h: Harness, chain: Anvil, artifact: str | None) -> None:
    owner = Account.create()
    if artifact is None:  # an honest wallet, but signed by someone else
        address = deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0]).address
        signer = Account.create()
    else:
        args = [bytes.fromhex("1626ba7f") + bytes(28)] if artifact == "WrongMagicWallet" else []
        address = deploy(chain.w3, artifact, *args, sender=chain.accounts[0]).address
        signer = owner
    reply = await attempt(h, address, signer)
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_signature", reply.text


async def test_rpc_down_fails_closed_but_eoas_still_sign_in(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, chains=chain_settings("http://127.0.0.1:1"))
    async with running_app(settings, FakeClock()) as h:
        contract_like = Account.create().address
        reply = await attempt(h, contract_like, Account.create())
        assert reply.status_code == 503 and reply.json()["error"] == "temporarily_unavailable"
        assert "access_token" not in reply.text
        eoa = Account.create()
        assert (await attempt(h, eoa.address, eoa)).status_code == 200
