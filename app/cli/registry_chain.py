"""``portcullis registry`` on the chain: where the registry is, the signer, reads, writes and reverts.

The chain-facing half of the registry CLI (app/cli/registry.py holds the command line and the output):
resolving the target chain (configured, or the development chain of `make run`), loading the signer,
connecting, reading records and logs, sending transactions, and turning revert data into a typed
RegistryCliError with one sentence per custom error of the ComplianceRegistry ABI (contracts/README.md).

web3 and eth-account are imported inside the functions that use them: importing web3 takes about a second,
and every ``portcullis`` command builds the registry parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from eth_hash.auto import keccak

from app.chain import artifacts
from app.chain.rpc import revert_data
from app.cli import registry_csv as rc
from app.cli.failures import EXIT_USAGE
from app.settings import EligibilityRule, Settings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract

ARTIFACT = artifacts.ARTIFACTS_DIR / "ComplianceRegistry.json"
# Anvil's / hardhat's well-known dev account #1 (mnemonic "test test ... junk"), which the development chain
# of `make run` seeds as the compliance account. Public: used only against that chain, never in production.
DEV_COMPLIANCE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_INFO_TIMEOUT = 5.0
GAS_MARGIN_PERCENT = 20
LOG_CHUNK_BLOCKS = 50_000
ROLE_NAMES = ("DEFAULT_ADMIN_ROLE", "ATTESTER_ROLE", "REVOKER_ROLE", "PAUSER_ROLE")
# What `registry roles grant|revoke ROLE` accepts for each role (any case, with or without ``_ROLE``).
ROLE_ALIASES: Mapping[str, str] = {
    "ADMIN": "DEFAULT_ADMIN_ROLE",
    "DEFAULT_ADMIN": "DEFAULT_ADMIN_ROLE",
    "ATTESTER": "ATTESTER_ROLE",
    "REVOKER": "REVOKER_ROLE",
    "PAUSER": "PAUSER_ROLE",
}
ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)

# One sentence per custom error of the ComplianceRegistry ABI; arguments are pre-formatted (see _pretty_arg).
REVERT_SENTENCES: Mapping[str, str] = {
    "AccessControlUnauthorizedAccount": "the signer {account} lacks {neededRole} on this registry "
    "(an admin must grant it)",
    "AccessControlBadConfirmation": "a role can only be renounced by its own holder",
    "EnforcedPause": "the registry is paused: grant and unfreeze are blocked until an admin unpauses it "
    "(revoke and freeze still work)",
    "ExpectedPause": "the registry is not paused",
    "ComplianceRegistryZeroAddress": "the zero address cannot hold a record",
    "ComplianceRegistryInvalidBatchLength": "a batch must hold 1..{max} entries, this one has {length}",
    "ComplianceRegistryLengthMismatch": "the batch has {accounts} accounts but {inputs} records",
    "ComplianceRegistryInvalidResidence": "residence {residence} is not an ISO 3166-1 numeric code (1..999)",
    "ComplianceRegistryInvalidInvestorClass": "investor class {investorClass} is not 1..3",
    "ComplianceRegistryInvalidKycLevel": "KYC level {kycLevel} is not 1..3",
    "ComplianceRegistryInvalidAmlRisk": "AML risk {amlRisk} is not 1..3",
    "ComplianceRegistryInvalidExpiry": "valid-until {validUntil} is not after the block time or more than "
    "5 years ahead (latest {maxValidUntil})",
    "ComplianceRegistryZeroSubjectId": "the subject id must not be zero",
    "ComplianceRegistryZeroEvidenceRef": "the evidence reference must not be zero",
    "ComplianceRegistryZeroReason": "a revocation or freeze needs a non-zero reason",
    "ComplianceRegistryNoRecord": "{account} has no record",
    "ComplianceRegistryAlreadyRevoked": "the record of {account} is already revoked",
    "ComplianceRegistryAlreadyFrozen": "{account} is already frozen",
    "ComplianceRegistryNotFrozen": "{account} is not frozen",
}


# ---------------------------------------------------------------- errors


class RegistryCliError(Exception):
    """A failure the operator can act on: printed as one line, exit code 2 (``exit_code``)."""

    exit_code = EXIT_USAGE

    def add_context(self, text: str) -> None:
        """Prefix the message with where it happened (which batch, which transaction)."""
        self.args = (f"{text}: {self.args[0] if self.args else ''}",)

    def add_hint(self, text: str) -> None:
        self.args = (f"{self.args[0] if self.args else ''}; {text}",)


class NoRegistryError(RegistryCliError):
    """No chain with a registry is configured (or the address holds no contract)."""


class NoSignerError(RegistryCliError):
    """A write needs a signer and none is configured."""


class SignerError(RegistryCliError):
    """The configured signer cannot be used (bad key, wrong keystore password, dev key in production)."""


class DevChainError(RegistryCliError):
    """The development server's /dev/chain/info cannot be read."""


class GrantInterrupted(RegistryCliError):
    """Ctrl-C during `grant --csv`: the message says which batches went through (exit code 130)."""


class RpcUnreachableError(RegistryCliError):
    """No RPC URL of the chain answers."""


class WrongChainError(RegistryCliError):
    """The RPC serves another chain than the one configured."""


class TransactionError(RegistryCliError):
    """The node refused a transaction, it reverted when mined, or it was not mined in time."""


class ContractRevertError(RegistryCliError):
    """The registry refused the call with a custom error; ``error`` is its name, ``values`` its arguments."""

    def __init__(self, message: str, error: str = "", values: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.values = dict(values or {})


class MissingRoleError(ContractRevertError):
    """AccessControlUnauthorizedAccount: the signer lacks ``values['neededRole']``."""


class RegistryPausedError(ContractRevertError):
    """EnforcedPause: grant and unfreeze are stopped."""


# ---------------------------------------------------------------- where the registry is


@dataclass(frozen=True)
class Target:
    """The chain and registry a command talks to."""

    chain_id: int
    rpc_urls: tuple[str, ...]
    registry: str
    eligibility: EligibilityRule
    rpc_timeout: float
    dev: bool = False
    key_hint: str | None = None


def dev_chain_urls(issuer: str) -> tuple[str, str]:
    """(JSON-RPC URL, info URL) of the development chain that the server at ``issuer`` (`make run`) serves."""
    base = issuer.rstrip("/")
    return f"{base}/dev/chain/rpc", f"{base}/dev/chain/info"


def _as_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a chain id")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 0)
    raise TypeError(f"not an integer: {value!r}")


def fetch_dev_chain(settings: Settings) -> Target:
    """GET {issuer}/dev/chain/info -> {"chain_id", "registry", "compliance_key_hint"}."""
    import httpx

    rpc_url, info_url = dev_chain_urls(settings.issuer)
    try:
        response = httpx.get(info_url, timeout=DEV_INFO_TIMEOUT)
    except httpx.HTTPError as exc:
        raise DevChainError(
            f"cannot reach the development server at {info_url} ({failure_reason(exc)}): "
            "is `make run` running?"
        ) from None
    if response.status_code != 200:
        raise DevChainError(
            f"{info_url} answered HTTP {response.status_code}: "
            "is the server running with PORTCULLIS_DEV_CHAIN=true?"
        )
    try:
        info = response.json()
        chain_id = _as_int(info["chain_id"])
        registry = rc.parse_address(str(info["registry"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DevChainError(
            f"{info_url} did not answer {{chain_id, registry, compliance_key_hint}} ({exc})"
        ) from None
    hint = info.get("compliance_key_hint")
    return Target(
        chain_id,
        (rpc_url,),
        registry,
        EligibilityRule(),
        DEV_INFO_TIMEOUT,
        dev=True,
        key_hint=str(hint or ""),
    )


def resolve_target(settings: Settings, chain_id: int | None, *, deploying: bool = False) -> Target:
    """The configured chain (``--chain`` or the first), else the development chain, else NoRegistryError.

    ``deploying``: the chain may have no registry yet (``registry deploy``); its ``registry`` is then ""."""
    if settings.chains:
        chain = settings.chains[0] if chain_id is None else settings.chain(chain_id)
        if chain is None:
            known = ", ".join(str(c.chain_id) for c in settings.chains)
            raise NoRegistryError(f"chain {chain_id} is not configured (PORTCULLIS_CHAINS has {known})")
        if chain.registry is None and not deploying:
            raise NoRegistryError(
                f"no registry configured for chain {chain.chain_id}: "
                'set "registry" in its PORTCULLIS_CHAINS entry (or deploy one: `portcullis registry deploy`)'
            )
        return Target(
            chain.chain_id,
            tuple(chain.rpc_urls),
            rc.checksum_address(chain.registry) if chain.registry else "",
            chain.eligibility,
            chain.rpc_timeout_seconds,
        )
    if settings.dev_chain and settings.mode == "development":
        target = fetch_dev_chain(settings)
        if chain_id is not None and chain_id != target.chain_id:
            raise NoRegistryError(
                f"chain {chain_id} is not configured (only the development chain {target.chain_id} is)"
            )
        return target
    if deploying:
        raise NoRegistryError(
            "no chain configured to deploy to: set PORTCULLIS_CHAINS (chain_id and rpc_urls)"
        )
    raise NoRegistryError(
        'no registry configured: set PORTCULLIS_CHAINS with a "registry" address '
        "(in development: PORTCULLIS_DEV_CHAIN=true and `make run`)"
    )


# ---------------------------------------------------------------- the signer


def _key_signer(hex_key: str) -> LocalAccount:
    from eth_account import Account

    body = hex_key.strip().removeprefix("0x")
    try:
        if len(body) != 64:
            raise ValueError("wrong length")
        account: LocalAccount = Account.from_key(bytes.fromhex(body))
    except ValueError:
        # Never echo the value: it is (nearly) a private key.
        raise SignerError("PORTCULLIS_REGISTRY_KEY is not a 32-byte hex private key") from None
    return account


def _keystore_signer(path: Path, password: str | None) -> LocalAccount:
    from eth_account import Account

    if password is None:
        raise NoSignerError(
            "PORTCULLIS_REGISTRY_KEYSTORE is set but PORTCULLIS_REGISTRY_KEYSTORE_PASSWORD is not"
        )
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise SignerError(f"cannot read keystore {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise SignerError(f"keystore {path} is not JSON") from None
    try:
        key = Account.decrypt(keystore, password)
    except (ValueError, KeyError, TypeError):
        raise SignerError(f"keystore {path}: wrong password, or not an encrypted JSON keystore") from None
    account: LocalAccount = Account.from_key(key)
    return account


def dev_signer(settings: Settings) -> LocalAccount:
    """The seeded development compliance key; refused unless PORTCULLIS_MODE=development."""
    from eth_account import Account

    if settings.mode != "development":
        raise SignerError("the development compliance key is refused outside development mode")
    account: LocalAccount = Account.from_key(DEV_COMPLIANCE_KEY)
    return account


def load_signer(settings: Settings, target: Target) -> LocalAccount:
    key, keystore = settings.registry_key, settings.registry_keystore
    if key is not None and keystore is not None:
        raise SignerError("set PORTCULLIS_REGISTRY_KEY or PORTCULLIS_REGISTRY_KEYSTORE, not both")
    if key is not None:
        return _key_signer(key.get_secret_value())
    if keystore is not None:
        password = settings.registry_keystore_password
        return _keystore_signer(keystore, password.get_secret_value() if password else None)
    if target.dev:
        return dev_signer(settings)
    raise NoSignerError(
        "no signer configured: set PORTCULLIS_REGISTRY_KEY, or PORTCULLIS_REGISTRY_KEYSTORE and "
        "PORTCULLIS_REGISTRY_KEYSTORE_PASSWORD"
    )


# ---------------------------------------------------------------- the chain


def redact_url(url: str) -> str:
    """scheme://host[:port] only: RPC URLs often carry an API key in their path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def failure_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words ("connection refused", "timed out", ...), never the URL."""
    text = str(exc)
    for needle, label in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("Timeout", "timed out"),
        ("resolve", "host not found"),
        ("Name or service", "host not found"),
    ):
        if needle in text:
            return label
    return type(exc).__name__


def connect(target: Target) -> Web3:
    """A Web3 on the first RPC URL that answers, after checking that it serves the configured chain."""
    from web3 import HTTPProvider, Web3
    from web3.exceptions import Web3Exception

    failures = []
    for url in target.rpc_urls:
        provider = HTTPProvider(
            url, request_kwargs={"timeout": target.rpc_timeout}, exception_retry_configuration=None
        )
        w3 = Web3(provider)
        try:
            answered = int(w3.eth.chain_id)
        except (OSError, ValueError, Web3Exception) as exc:
            failures.append(f"{redact_url(url)} ({failure_reason(exc)})")
            continue
        if answered != target.chain_id:
            raise WrongChainError(
                f"wrong chain: the RPC at {redact_url(url)} serves chain {answered}, "
                f"but chain {target.chain_id} is configured"
            )
        return w3
    raise RpcUnreachableError(f"RPC unreachable for chain {target.chain_id}: {'; '.join(failures)}")


def load_abi() -> list[dict[str, Any]]:
    try:
        abi: list[dict[str, Any]] = json.loads(ARTIFACT.read_text())["abi"]
    except (OSError, ValueError, KeyError):
        raise RegistryCliError(
            f"cannot load the registry ABI from {ARTIFACT} (run node contracts/script/build.mjs)"
        ) from None
    return abi


def _abi_type(entry: Mapping[str, Any]) -> str:
    kind: str = entry["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + kind[len("tuple") :]
    return kind


def abi_signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(_abi_type(i) for i in entry.get('inputs', []))})"


def role_id(name: str) -> bytes:
    if name == "DEFAULT_ADMIN_ROLE":
        return bytes(32)
    digest: bytes = keccak(name.encode())
    return digest


def parse_role(text: str) -> str:
    """A role as ``registry roles grant|revoke`` takes it (ATTESTER, attester_role, admin, ...): its name."""
    key = text.strip().upper().replace("-", "_")
    name = ROLE_ALIASES.get(key.removesuffix("_ROLE"), key if key in ROLE_NAMES else None)
    if name is None:
        known = ", ".join(ROLE_ALIASES)
        raise rc.RegistryInputError(
            f"ROLE: unknown role {text!r}: give one of {known} (or their *_ROLE names)"
        )
    return name


def role_name(role: bytes) -> str:
    return next((name for name in ROLE_NAMES if role_id(name) == role), "0x" + role.hex())


def _pretty_arg(name: str, kind: str, value: object) -> str:
    if kind == "address" and isinstance(value, str):
        return rc.checksum_address(value)
    if kind == "bytes32" and isinstance(value, bytes):
        return role_name(value) if "Role" in name else "0x" + value.hex()
    if name in ("validUntil", "maxValidUntil") and isinstance(value, int):
        return rc.iso_time(value)
    return str(value)


class RevertDecoder:
    """Revert data -> a typed ContractRevertError with a sentence, using the errors of the ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "error":
                digest: bytes = keccak(abi_signature(entry).encode())
                self._errors[digest[:4]] = entry

    @property
    def error_names(self) -> list[str]:
        return sorted(entry["name"] for entry in self._errors.values())

    def decode(self, data: bytes) -> ContractRevertError:
        from eth_abi.abi import decode

        selector, body = data[:4], data[4:]
        try:
            if selector == ERROR_STRING:
                return ContractRevertError(f"the registry reverted: {decode(['string'], body)[0]}", "Error")
            if selector == PANIC:
                return ContractRevertError(f"the registry panicked (code {decode(['uint256'], body)[0]:#x})")
            entry = self._errors.get(selector)
            if entry is None:
                what = f"error 0x{data.hex()}" if data else "no reason"
                return ContractRevertError(f"the registry reverted with {what}")
            inputs = entry.get("inputs", [])
            values = decode([_abi_type(i) for i in inputs], body)
        except Exception:
            return ContractRevertError(f"the registry reverted with undecodable data 0x{data.hex()}")
        return self._sentence(entry["name"], inputs, values)

    def _sentence(
        self, name: str, inputs: list[dict[str, Any]], values: Sequence[Any]
    ) -> ContractRevertError:
        pretty = {
            i["name"]: _pretty_arg(i["name"], i["type"], v) for i, v in zip(inputs, values, strict=True)
        }
        template = REVERT_SENTENCES.get(name)
        if template is None:
            message = f"the registry reverted with {name}({', '.join(f'{k}={v}' for k, v in pretty.items())})"
        else:
            message = template.format(**pretty)
        kind = {"AccessControlUnauthorizedAccount": MissingRoleError, "EnforcedPause": RegistryPausedError}
        return kind.get(name, ContractRevertError)(message, name, pretty)


class Session:
    """An open connection to one registry: reads, log queries and the revert decoder."""

    def __init__(self, target: Target, w3: Web3, abi: list[dict[str, Any]]) -> None:
        self.target = target
        self.w3 = w3
        # No registry yet (``registry deploy``): the zero address, never called.
        address = target.registry or "0x" + "00" * 20
        self.contract: Contract = w3.eth.contract(address=w3.to_checksum_address(address), abi=abi)
        self.decoder = RevertDecoder(abi)
        self._abi = abi
        self._block_times: dict[int, int] = {}

    @classmethod
    def open(cls, target: Target) -> Session:
        w3 = connect(target)
        if not w3.eth.get_code(w3.to_checksum_address(target.registry)):
            raise NoRegistryError(f"no contract at registry {target.registry} on chain {target.chain_id}")
        return cls(target, w3, load_abi())

    @classmethod
    def open_chain(cls, target: Target) -> Session:
        """The chain only, for ``registry deploy`` (the target's registry need not exist)."""
        return cls(target, connect(target), load_abi())

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def block_time(self, number: int) -> int:
        if number not in self._block_times:
            self._block_times[number] = int(self.w3.eth.get_block(number)["timestamp"])
        return self._block_times[number]

    def record(self, account: str) -> rc.StoredRecord:
        return rc.StoredRecord.from_abi(self.contract.functions.getRecord(account).call())

    def records(self, accounts: Sequence[str]) -> list[rc.StoredRecord]:
        found: list[rc.StoredRecord] = []
        for start in range(0, len(accounts), rc.MAX_BATCH):
            chunk = list(accounts[start : start + rc.MAX_BATCH])
            found += [rc.StoredRecord.from_abi(r) for r in self.contract.functions.getRecords(chunk).call()]
        return found

    def event_topic(self, name: str) -> str:
        entry = next(e for e in self._abi if e.get("type") == "event" and e["name"] == name)
        digest: bytes = keccak(abi_signature(entry).encode())
        return "0x" + digest.hex()

    def logs(self, events: Sequence[str], from_block: int, *topics: str | None) -> list[Any]:
        """Decoded logs of ``events`` (topic0 any of them, then ``topics``), oldest first, in block chunks."""
        by_topic = {self.event_topic(name): name for name in events}
        latest = int(self.w3.eth.block_number)
        decoded: list[Any] = []
        for start in range(from_block, latest + 1, LOG_CHUNK_BLOCKS):
            params: Any = {
                "address": self.contract.address,
                "fromBlock": start,
                "toBlock": min(start + LOG_CHUNK_BLOCKS - 1, latest),
                "topics": [list(by_topic), *topics],
            }
            for log in self.w3.eth.get_logs(params):
                name = by_topic["0x" + bytes(log["topics"][0]).hex()]
                decoded.append(self.contract.events[name]().process_log(log))
        return sorted(decoded, key=lambda e: (e["blockNumber"], e["logIndex"]))


def account_topic(account: str) -> str:
    return "0x" + account[2:].lower().rjust(64, "0")


def rule_abi(rule: EligibilityRule) -> tuple[int, int, int, int, int]:
    """``IComplianceRegistry.Requirements`` from the chain's eligibility rule."""
    return (
        rule.required_flags,
        rule.forbidden_flags,
        rule.min_investor_class,
        rule.min_kyc_level,
        rule.max_aml_risk,
    )


# ---------------------------------------------------------------- writes


@dataclass(frozen=True)
class Call:
    """One registry function call: ABI arguments, their JSON form, and a short label for people."""

    function: str
    args: tuple[Any, ...]
    shown: dict[str, Any]
    label: str


class Writer:
    """Estimates, signs, sends and waits for registry calls; with ``dry_run`` it only estimates."""

    def __init__(self, session: Session, signer: LocalAccount, *, dry_run: bool, timeout: float) -> None:
        self.session = session
        self.signer = signer
        self.dry_run = dry_run
        self.timeout = timeout
        self.in_flight: str | None = None  # the hash of a sent transaction whose receipt is awaited

    def _bound(self, call: Call) -> Any:
        return self.session.contract.functions[call.function](*call.args)

    def estimate(self, call: Call) -> int:
        from web3.exceptions import ContractLogicError, Web3RPCError

        try:
            return int(self._bound(call).estimate_gas({"from": self.signer.address}))
        except ContractLogicError as exc:
            error = self.session.decoder.decode(revert_data(exc))
        except Web3RPCError as exc:
            raise TransactionError(
                f"the node refused to estimate {call.function}: {rpc_message(exc)}"
            ) from None
        if isinstance(error, MissingRoleError) and self.session.target.key_hint:
            error.add_hint(f"the development chain's compliance key is {self.session.target.key_hint}")
        raise error

    def submit(self, call: Call) -> dict[str, Any]:
        gas = self.estimate(call)
        result: dict[str, Any] = {
            "function": call.function,
            "args": call.shown,
            "from": self.signer.address,
            "estimated_gas": gas,
        }
        if self.dry_run:
            return {**result, "dry_run": True}
        return {**result, "dry_run": False, **self._send(call, gas)}

    def _send(self, call: Call, gas: int) -> dict[str, Any]:
        sent = send_transaction(self, self._bound(call), gas, call.function)
        if sent.receipt["status"] != 1:
            raise self._reverted(call, sent.receipt["blockNumber"], sent.tx)
        return sent.result()

    def _reverted(self, call: Call, block: int, tx_hash: str) -> RegistryCliError:
        """Replay the call on the state before its block to recover why it reverted."""
        from web3.exceptions import ContractLogicError

        try:
            self._bound(call).call({"from": self.signer.address}, block_identifier=block - 1)
            error: RegistryCliError = TransactionError("reverted (no reason on replay)")
        except ContractLogicError as exc:
            error = self.session.decoder.decode(revert_data(exc))
        error.add_context(f"tx {tx_hash} reverted in block {block}")
        return error


@dataclass(frozen=True)
class Sent:
    """A mined transaction: its hash and receipt."""

    tx: str
    receipt: Any

    def result(self) -> dict[str, Any]:
        return {
            "tx": self.tx,
            "block": int(self.receipt["blockNumber"]),
            "gas_used": int(self.receipt["gasUsed"]),
        }


def send_transaction(writer: Writer, bound: Any, gas: int, what: str) -> Sent:
    """Sign ``bound`` (a contract function or constructor) locally, send it and wait for its receipt.
    ``writer.in_flight`` holds the hash while the receipt is awaited (for Ctrl-C reports)."""
    from web3.exceptions import TimeExhausted, Web3RPCError

    w3, address = writer.session.w3, writer.signer.address
    limit = int(w3.eth.get_block("latest")["gasLimit"])
    tx = bound.build_transaction(
        {
            "from": address,
            "nonce": w3.eth.get_transaction_count(address, "pending"),
            "gas": min(gas * (100 + GAS_MARGIN_PERCENT) // 100, limit),
            "chainId": writer.session.target.chain_id,
        }
    )
    signed = writer.signer.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    except Web3RPCError as exc:
        raise TransactionError(f"the node refused {what}: {rpc_message(exc)}") from None
    shown_hash = writer.in_flight = "0x" + bytes(tx_hash).hex()
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=writer.timeout, poll_latency=0.1)
        writer.in_flight = None
    except TimeExhausted:
        raise TransactionError(
            f"{what} tx {shown_hash} was sent but not mined within {writer.timeout:g} s "
            "(it may still be mined: check with `portcullis registry history`)"
        ) from None
    return Sent(shown_hash, receipt)


def deploy_registry(writer: Writer, admin: str) -> dict[str, Any]:
    """Deploy ComplianceRegistry(admin) from the committed artifact; with ``dry_run`` only estimate it."""
    from web3.exceptions import ContractLogicError, Web3RPCError

    artifact = artifacts.load("ComplianceRegistry")
    factory = writer.session.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    constructor = factory.constructor(admin)
    try:
        gas = int(constructor.estimate_gas({"from": writer.signer.address}))
    except ContractLogicError as exc:
        raise writer.session.decoder.decode(revert_data(exc)) from None
    except Web3RPCError as exc:
        raise TransactionError(f"the node refused to estimate the deployment: {rpc_message(exc)}") from None
    result: dict[str, Any] = {
        "function": "constructor",
        "args": {"admin": admin},
        "from": writer.signer.address,
        "estimated_gas": gas,
    }
    if writer.dry_run:
        return {**result, "dry_run": True}
    sent = send_transaction(writer, constructor, gas, "the deployment")
    if sent.receipt["status"] != 1 or not sent.receipt.get("contractAddress"):
        raise TransactionError(f"the deployment tx {sent.tx} failed in block {sent.receipt['blockNumber']}")
    address = rc.checksum_address(str(sent.receipt["contractAddress"]))
    return {**result, "dry_run": False, **sent.result(), "registry": address}


def rpc_message(exc: BaseException) -> str:
    """The first line of a node's error message (or the exception's type when it has none)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
