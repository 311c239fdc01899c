"""ERC-6492 universal signature validator, called deployless: `eth_call` with no `to` and
`data = creation bytecode ++ abi.encode(signer, hash, signature)`; it answers one byte, 0x01 or 0x00."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from tests.anvil import Anvil, deploy, load_artifact, revert_data, reverts, selector, send

SUFFIX = bytes.fromhex("64926492" * 8)
VALID, INVALID = b"\x01", b"\x00"
MAGIC = bytes.fromhex("1626ba7e")


@pytest.fixture(scope="module")
def owner(chain: Anvil) -> LocalAccount:
    return chain.dev_accounts[5]


@pytest.fixture(scope="module")
def factory(chain: Anvil) -> Contract:
    return deploy(chain.w3, "OwnedWalletFactory", sender=chain.accounts[0])


def validate(chain: Anvil, signer: str, digest: bytes, signature: bytes, gas: int | None = None) -> bytes:
    bytecode = bytes.fromhex(load_artifact("UniversalSigValidator")["bytecode"][2:])
    data = bytecode + encode(["address", "bytes32", "bytes"], [signer, digest, signature])
    tx: dict[str, object] = {"data": "0x" + data.hex()}
    if gas is not None:
        tx["gas"] = gas
    return bytes(chain.w3.eth.call(tx))  # type: ignore[arg-type]


def signed(account: LocalAccount, text: str = "Sign in to Portcullis") -> tuple[bytes, bytes]:
    message = account.sign_message(encode_defunct(text=text))
    return bytes(message.message_hash), bytes(message.signature)


def wrap(target: str, calldata: str | bytes, inner: bytes) -> bytes:
    data = bytes.fromhex(calldata[2:]) if isinstance(calldata, str) else calldata
    return encode(["address", "bytes", "bytes"], [target, data, inner]) + SUFFIX


def counterfactual(factory: Contract, owner: str, salt: bytes) -> tuple[str, str]:
    """(wallet address, factory calldata) of a not-yet-deployed OwnedWallet."""
    address = factory.functions.walletAddress(owner, salt).call()
    return address, factory.encode_abi("deployWallet", args=[owner, salt])


# ---------------------------------------------------------------------------- EOAs (ecrecover)


def test_eoa_signature(chain: Anvil, owner: LocalAccount) -> None:
    digest, signature = signed(owner)
    assert validate(chain, owner.address, digest, signature) == VALID
    assert validate(chain, Account.create().address, digest, signature) == INVALID
    other_digest, _ = signed(owner, "another message")
    assert validate(chain, owner.address, other_digest, signature) == INVALID


@pytest.mark.parametrize("length", [0, 31, 64, 66])
def test_eoa_signature_must_be_65_bytes(chain: Anvil, owner: LocalAccount, length: int) -> None:
    digest, signature = signed(owner)
    bad = (signature * 2)[:length]
    with reverts("UniversalSigValidatorInvalidSignatureLength(uint256)", length):
        validate(chain, owner.address, digest, bad)


@pytest.mark.parametrize("v", [0, 1, 29])
def test_eoa_signature_v_must_be_27_or_28(chain: Anvil, owner: LocalAccount, v: int) -> None:
    digest, signature = signed(owner)
    with reverts("UniversalSigValidatorInvalidSignatureV(uint8)", v):
        validate(chain, owner.address, digest, signature[:64] + bytes([v]))


def test_unrecoverable_signature_never_matches_the_zero_address(chain: Anvil) -> None:
    digest = Web3.keccak(text="x")
    assert validate(chain, "0x" + "00" * 20, digest, b"\x00" * 64 + b"\x1b") == INVALID


# ---------------------------------------------------------------------------- deployed ERC-1271 wallets


def test_deployed_wallet_plain_signature(chain: Anvil, owner: LocalAccount) -> None:
    wallet = deploy(chain.w3, "OwnedWallet", owner.address, sender=chain.accounts[0])
    digest, signature = signed(owner)
    assert validate(chain, wallet.address, digest, signature) == VALID
    _, stranger = signed(Account.create())
    assert validate(chain, wallet.address, digest, stranger) == INVALID


def test_an_eoa_signature_does_not_pass_for_a_wallet_it_does_not_own(
    chain: Anvil, owner: LocalAccount
) -> None:
    """ERC-1271 comes before ecrecover: a contract signer is never judged by ecrecover."""
    wallet = deploy(chain.w3, "OwnedWallet", Account.create().address, sender=chain.accounts[0])
    digest, signature = signed(owner)
    assert validate(chain, wallet.address, digest, signature) == INVALID


# ---------------------------------------------------------------------- counterfactual wallets (ERC-6492)


def test_counterfactual_wallet_is_valid_without_being_deployed(
    chain: Anvil, factory: Contract, owner: LocalAccount
) -> None:
    address, calldata = counterfactual(factory, owner.address, Web3.keccak(text="cf-1"))
    digest, signature = signed(owner)
    block = chain.w3.eth.block_number
    assert validate(chain, address, digest, wrap(factory.address, calldata, signature)) == VALID
    assert chain.w3.eth.get_code(address) == b""
    assert chain.w3.eth.block_number == block


def test_counterfactual_wallet_refuses_another_key(
    chain: Anvil, factory: Contract, owner: LocalAccount
) -> None:
    address, calldata = counterfactual(factory, owner.address, Web3.keccak(text="cf-2"))
    digest, signature = signed(Account.create())
    assert validate(chain, address, digest, wrap(factory.address, calldata, signature)) == INVALID


def test_wrapped_signature_stays_valid_after_deployment(
    chain: Anvil, factory: Contract, owner: LocalAccount
) -> None:
    salt = Web3.keccak(text="cf-3")
    address, calldata = counterfactual(factory, owner.address, salt)
    digest, signature = signed(owner)
    send(factory.functions.deployWallet(owner.address, salt), chain.accounts[0])
    assert chain.w3.eth.get_code(address) != b""
    assert validate(chain, address, digest, wrap(factory.address, calldata, signature)) == VALID
    assert validate(chain, address, digest, signature) == VALID


def test_wrapped_signature_is_judged_by_the_live_wallet(
    chain: Anvil, factory: Contract, owner: LocalAccount
) -> None:
    """After deployment and key rotation, a signature wrapped before deployment no longer passes."""
    salt = Web3.keccak(text="cf-4")
    address, calldata = counterfactual(factory, owner.address, salt)
    digest, signature = signed(owner)
    send(factory.functions.deployWallet(owner.address, salt), chain.accounts[0])
    wallet = chain.w3.eth.contract(address=address, abi=load_artifact("OwnedWallet")["abi"])
    send(wallet.functions.setOwner(chain.accounts[6]), owner.address)
    assert validate(chain, address, digest, wrap(factory.address, calldata, signature)) == INVALID


def test_prepare_call_readies_a_deployed_wallet(chain: Anvil, owner: LocalAccount) -> None:
    lazy = deploy(chain.w3, "PreparableWallet", owner.address, sender=chain.accounts[0])
    digest, signature = signed(owner)
    assert validate(chain, lazy.address, digest, signature) == INVALID
    wrapped = wrap(lazy.address, lazy.encode_abi("prepare", args=[]), signature)
    assert validate(chain, lazy.address, digest, wrapped) == VALID
    assert not lazy.functions.prepared().call()  # eth_call left no trace


def test_failed_prepare_call_is_reported(chain: Anvil, owner: LocalAccount) -> None:
    lazy = deploy(chain.w3, "PreparableWallet", owner.address, sender=chain.accounts[0])
    refuser = deploy(chain.w3, "RevertingWallet", sender=chain.accounts[0])
    digest, signature = signed(owner)
    failing = refuser.encode_abi("isValidSignature", args=[digest, b""])
    inner_error = selector("RevertingWalletRefused(bytes32)") + digest
    with reverts("UniversalSigValidatorCallFailed(bytes)", inner_error):
        validate(chain, lazy.address, digest, wrap(refuser.address, failing, signature))


def test_failed_factory_call_is_reported(chain: Anvil, factory: Contract, owner: LocalAccount) -> None:
    address, _ = counterfactual(factory, owner.address, Web3.keccak(text="cf-5"))
    calldata = factory.encode_abi("deployWallet", args=["0x" + "00" * 20, Web3.keccak(text="cf-5")])
    digest, signature = signed(owner)
    with reverts("UniversalSigValidatorCallFailed(bytes)", selector("OwnedWalletZeroOwner()")):
        validate(chain, address, digest, wrap(factory.address, calldata, signature))


def test_factory_call_that_deploys_elsewhere_is_reported(
    chain: Anvil, factory: Contract, owner: LocalAccount
) -> None:
    address, _ = counterfactual(factory, owner.address, Web3.keccak(text="cf-6"))
    _, other_calldata = counterfactual(factory, owner.address, Web3.keccak(text="cf-7"))
    digest, signature = signed(owner)
    with reverts("UniversalSigValidatorDeploySilentlyFailed()"):
        validate(chain, address, digest, wrap(factory.address, other_calldata, signature))


def test_malformed_wrapper_reverts_without_data(chain: Anvil, owner: LocalAccount) -> None:
    digest, _ = signed(owner)
    with pytest.raises(ContractLogicError) as info:
        validate(chain, Account.create().address, digest, b"\x01\x02\x03" + SUFFIX)
    assert revert_data(info.value) == b""


# ---------------------------------------------------------------------------- malicious wallets


def test_reverting_wallet(chain: Anvil, owner: LocalAccount) -> None:
    bad = deploy(chain.w3, "RevertingWallet", sender=chain.accounts[0])
    digest, signature = signed(owner)
    inner_error = selector("RevertingWalletRefused(bytes32)") + digest
    with reverts("UniversalSigValidatorERC1271Revert(bytes)", inner_error):
        validate(chain, bad.address, digest, signature)


def test_gas_burning_wallet(chain: Anvil, owner: LocalAccount) -> None:
    """The wallet eats the 63/64 of the gas it is given; the validator keeps 1/64 to report it."""
    bad = deploy(chain.w3, "GasBurningWallet", sender=chain.accounts[0])
    digest, signature = signed(owner)
    with reverts("UniversalSigValidatorERC1271Revert(bytes)", b""):
        validate(chain, bad.address, digest, signature, gas=5_000_000)


@pytest.mark.parametrize(
    ("word", "answer"),
    [
        (bytes.fromhex("1626ba7f") + b"\x00" * 28, INVALID),
        (MAGIC + b"\x00" * 27 + b"\x01", INVALID),
        (b"\x00" * 32, INVALID),
        (MAGIC + b"\x00" * 28, VALID),
    ],
)
def test_only_a_clean_magic_word_counts(
    chain: Anvil, owner: LocalAccount, word: bytes, answer: bytes
) -> None:
    bad = deploy(chain.w3, "WrongMagicWallet", word, sender=chain.accounts[0])
    digest, signature = signed(owner)
    assert validate(chain, bad.address, digest, signature) == answer


def test_artifact_is_deployless_creation_code() -> None:
    artifact = load_artifact("UniversalSigValidator")
    constructor = next(e for e in artifact["abi"] if e["type"] == "constructor")
    assert [i["type"] for i in constructor["inputs"]] == ["address", "bytes32", "bytes"]
    assert not [e for e in artifact["abi"] if e["type"] == "function"]
