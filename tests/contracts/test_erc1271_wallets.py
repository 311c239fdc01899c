"""ERC-1271 test wallets and the CREATE2 factory that makes them counterfactual (the fixtures the server's
contract-wallet sign-in tests build on), including the malicious variants."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from tests.anvil import Anvil, contract_at, deploy, load_artifact, reverts, send

MAGIC = bytes.fromhex("1626ba7e")
INVALID = bytes.fromhex("ffffffff")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
ZERO_ADDRESS = "0x" + "00" * 20


@pytest.fixture(scope="module")
def owner(chain: Anvil) -> LocalAccount:
    """An unlocked, funded dev account, so it can also send transactions to its wallet."""
    return chain.dev_accounts[5]


@pytest.fixture(scope="module")
def wallet(chain: Anvil, owner: LocalAccount) -> Contract:
    return deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0])


@pytest.fixture(scope="module")
def factory(chain: Anvil) -> Contract:
    return deploy(chain.w3, "OwnedWalletFactory", sender=chain.accounts[0])


def signed(account: LocalAccount, text: str = "Sign in to Portcullis") -> tuple[bytes, bytes]:
    """(EIP-191 digest, 65-byte signature) as a wallet's owner would produce them for a SIWE message."""
    message = account.sign_message(encode_defunct(text=text))
    return bytes(message.message_hash), bytes(message.signature)


def high_s(signature: bytes) -> bytes:
    """The malleable twin (s -> n - s, v flipped): ecrecover accepts it, OpenZeppelin ECDSA does not."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def create2_address(factory: str, salt: bytes, init_code: bytes) -> str:
    digest = Web3.keccak(b"\xff" + bytes.fromhex(factory[2:]) + salt + Web3.keccak(init_code))
    return Web3.to_checksum_address(digest[12:])


# ---------------------------------------------------------------------------- OwnedWallet


def test_owner_signature_returns_exactly_the_magic_value(
    chain: Anvil, wallet: Contract, owner: LocalAccount
) -> None:
    digest, signature = signed(owner)
    assert wallet.functions.isValidSignature(digest, signature).call() == MAGIC
    calldata = wallet.encode_abi("isValidSignature", args=[digest, signature])
    raw = bytes(chain.w3.eth.call({"to": wallet.address, "data": calldata}))
    assert raw == MAGIC + b"\x00" * 28


def test_raw_hash_signature_is_valid_too(wallet: Contract, owner: LocalAccount) -> None:
    digest = Web3.keccak(text="any 32-byte digest, e.g. an EIP-712 hash")
    signature = bytes(owner.unsafe_sign_hash(digest).signature)
    assert wallet.functions.isValidSignature(digest, signature).call() == MAGIC


def test_other_signatures_are_refused(wallet: Contract, owner: LocalAccount) -> None:
    digest, signature = signed(owner)
    _, stranger_signature = signed(Account.create())
    other_digest, _ = signed(owner, "another message")
    check = wallet.functions.isValidSignature
    assert check(digest, stranger_signature).call() == INVALID
    assert check(other_digest, signature).call() == INVALID
    assert check(digest, signature[:64]).call() == INVALID
    assert check(digest, b"").call() == INVALID
    assert check(digest, high_s(signature)).call() == INVALID


def test_wallet_needs_an_owner(chain: Anvil) -> None:
    with reverts("OwnedWalletZeroOwner()"):
        deploy(chain.w3, "OwnedWallet", ZERO_ADDRESS, sender=chain.accounts[0])


def test_owner_rotation(chain: Anvil, wallet: Contract, owner: LocalAccount) -> None:
    successor = chain.dev_accounts[6]
    with reverts("OwnedWalletUnauthorized(address)", successor.address):
        wallet.functions.setOwner(successor.address).transact({"from": successor.address})
    with reverts("OwnedWalletZeroOwner()"):
        wallet.functions.setOwner(ZERO_ADDRESS).transact({"from": owner.address})
    receipt = send(wallet.functions.setOwner(successor.address), owner.address)
    (event,) = wallet.events.OwnedWalletOwnerChanged().process_receipt(receipt)
    assert event["args"] == {"previousOwner": owner.address, "newOwner": successor.address}
    assert wallet.functions.owner().call() == successor.address
    assert wallet.functions.isValidSignature(*signed(owner)).call() == INVALID
    assert wallet.functions.isValidSignature(*signed(successor)).call() == MAGIC


# ---------------------------------------------------------------------------- OwnedWalletFactory


def test_factory_address_is_known_before_deployment(chain: Anvil, factory: Contract) -> None:
    owner, salt = Account.create().address, Web3.keccak(text="salt-1")
    init_code = bytes.fromhex(load_artifact("OwnedWallet")["bytecode"][2:]) + encode(["address"], [owner])
    predicted = factory.functions.walletAddress(owner, salt).call()
    assert predicted == create2_address(factory.address, salt, init_code)
    assert chain.w3.eth.get_code(predicted) == b""

    receipt = send(factory.functions.deployWallet(owner, salt), chain.accounts[0])
    # The receipt also holds the new wallet's own OwnedWalletOwnerChanged log, which this ABI cannot decode.
    (event,) = factory.events.OwnedWalletFactoryDeployed().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {"wallet": predicted, "owner": owner, "salt": salt}
    assert chain.w3.eth.get_code(predicted) != b""
    assert contract_at(chain.w3, "OwnedWallet", predicted).functions.owner().call() == owner


def test_factory_deploy_is_idempotent(chain: Anvil, factory: Contract) -> None:
    owner, salt = Account.create().address, Web3.keccak(text="salt-2")
    send(factory.functions.deployWallet(owner, salt), chain.accounts[0])
    assert (
        factory.functions.deployWallet(owner, salt).call()
        == factory.functions.walletAddress(owner, salt).call()
    )
    receipt = send(factory.functions.deployWallet(owner, salt), chain.accounts[0])
    assert factory.events.OwnedWalletFactoryDeployed().process_receipt(receipt) == ()


def test_factory_addresses_differ_by_owner_and_salt(factory: Contract) -> None:
    a, b = Account.create().address, Account.create().address
    s1, s2 = Web3.keccak(text="s1"), Web3.keccak(text="s2")
    addresses = {factory.functions.walletAddress(o, s).call() for o in (a, b) for s in (s1, s2)}
    assert len(addresses) == 4


def test_factory_refuses_the_zero_owner(chain: Anvil, factory: Contract) -> None:
    with reverts("OwnedWalletZeroOwner()"):
        factory.functions.deployWallet(ZERO_ADDRESS, b"\x00" * 32).transact({"from": chain.accounts[0]})


# ---------------------------------------------------------------------------- PreparableWallet


def test_preparable_wallet_refuses_until_prepared(chain: Anvil, owner: LocalAccount) -> None:
    lazy = deploy(chain.w3, "PreparableWallet", owner.address, sender=chain.accounts[0])
    digest, signature = signed(owner)
    assert lazy.functions.isValidSignature(digest, signature).call() == INVALID
    receipt = send(lazy.functions.prepare(), chain.accounts[1])
    (event,) = lazy.events.PreparableWalletPrepared().process_receipt(receipt)
    assert event["args"]["by"] == chain.accounts[1]
    assert lazy.functions.prepared().call()
    assert lazy.functions.owner().call() == owner.address
    assert lazy.functions.isValidSignature(digest, signature).call() == MAGIC
    assert lazy.functions.isValidSignature(*signed(Account.create())).call() == INVALID
    receipt = send(lazy.functions.prepare(), chain.accounts[1])
    assert lazy.events.PreparableWalletPrepared().process_receipt(receipt) == ()


# ---------------------------------------------------------------------------- malicious wallets


def test_reverting_wallet_reverts(chain: Anvil, owner: LocalAccount) -> None:
    bad = deploy(chain.w3, "RevertingWallet", sender=chain.accounts[0])
    digest, signature = signed(owner)
    with reverts("RevertingWalletRefused(bytes32)", digest):
        bad.functions.isValidSignature(digest, signature).call()


def test_gas_burning_wallet_uses_up_all_gas(chain: Anvil, owner: LocalAccount) -> None:
    bad = deploy(chain.w3, "GasBurningWallet", sender=chain.accounts[0])
    digest, signature = signed(owner)
    calldata = bad.encode_abi("isValidSignature", args=[digest, signature])
    with pytest.raises((ContractLogicError, Web3RPCError), match=r"(?i)out ?of ?gas"):
        chain.w3.eth.call({"to": bad.address, "data": calldata, "gas": 2_000_000})


@pytest.mark.parametrize(
    "word",
    [
        bytes.fromhex("1626ba7f") + b"\x00" * 28,  # near miss
        MAGIC + b"\x00" * 27 + b"\x01",  # right first four bytes, dirty padding
        INVALID + b"\x00" * 28,
        MAGIC + b"\x00" * 28,  # the control: a clean magic word
    ],
)
def test_wrong_magic_wallet_returns_its_word_verbatim(chain: Anvil, owner: LocalAccount, word: bytes) -> None:
    bad = deploy(chain.w3, "WrongMagicWallet", word, sender=chain.accounts[0])
    assert bad.functions.answer().call() == word
    calldata = bad.encode_abi("isValidSignature", args=list(signed(owner)))
    assert bytes(chain.w3.eth.call({"to": bad.address, "data": calldata})) == word
