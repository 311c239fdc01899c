"""app.chain.wallets on a real EVM: deployed ERC-1271 wallets, counterfactual ERC-6492 wallets, and
malicious wallets refused cleanly (reverting, gas-burning, wrong magic); an unreachable RPC is not a 'no'."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct

from app.chain.rpc import Web3Rpc
from app.chain.types import ChainUnavailable
from app.chain.wallets import ERC6492_SUFFIX, contract_signature_valid
from tests.anvil import Anvil, deploy

GAS = 3_000_000


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil() as anvil:
        yield anvil


def caller(url: str) -> Web3Rpc:
    return Web3Rpc(31337, [url], timeout=5)


def personal(account: object, text: str) -> tuple[bytes, bytes]:
    signed = account.sign_message(encode_defunct(text=text))  # type: ignore[attr-defined]
    return bytes(signed.message_hash), bytes(signed.signature)


async def test_deployed_erc1271_wallet(chain: Anvil) -> None:
    owner = Account.create()
    wallet = deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0])
    digest, sig = personal(owner, "sign in")
    c = caller(chain.url)
    assert await contract_signature_valid(c, wallet.address, digest, sig, gas_cap=GAS, seconds=5)
    _, other = personal(Account.create(), "sign in")
    assert not await contract_signature_valid(c, wallet.address, digest, other, gas_cap=GAS, seconds=5)


async def test_counterfactual_erc6492_wallet_is_never_deployed(chain: Anvil) -> None:
    owner = Account.create()
    factory = deploy(chain.w3, "OwnedWalletFactory", sender=chain.accounts[0])
    salt = b"\x01" * 32
    address = factory.functions.walletAddress(owner.address, salt).call()
    calldata = bytes.fromhex(factory.encode_abi("deployWallet", args=[owner.address, salt])[2:])
    digest, inner = personal(owner, "sign in")
    wrapped = encode(["address", "bytes", "bytes"], [factory.address, calldata, inner]) + ERC6492_SUFFIX
    c = caller(chain.url)
    assert await contract_signature_valid(c, address, digest, wrapped, gas_cap=GAS, seconds=5)
    assert chain.w3.eth.get_code(address) == b""  # validated inside an eth_call only
    _, wrong = personal(Account.create(), "sign in")
    forged = encode(["address", "bytes", "bytes"], [factory.address, calldata, wrong]) + ERC6492_SUFFIX
    assert not await contract_signature_valid(c, address, digest, forged, gas_cap=GAS, seconds=5)


@pytest.mark.parametrize("artifact", ["RevertingWallet", "GasBurningWallet", "WrongMagicWallet"])
async def test_malicious_wallets_are_refused(chain: Anvil, artifact: str) -> None:
    owner = Account.create()
    args = [bytes.fromhex("1626ba7f") + bytes(28)] if artifact == "WrongMagicWallet" else []
    wallet = deploy(chain.w3, artifact, *args, sender=chain.accounts[0])
    digest, sig = personal(owner, "sign in")
    assert not await contract_signature_valid(
        caller(chain.url), wallet.address, digest, sig, gas_cap=GAS, seconds=5
    )


async def test_unreachable_rpc_is_unavailable_not_invalid() -> None:
    owner = Account.create()
    digest, sig = personal(owner, "sign in")
    with pytest.raises(ChainUnavailable):
        await contract_signature_valid(
            caller("http://127.0.0.1:1"), owner.address, digest, sig, gas_cap=GAS, seconds=5
        )
