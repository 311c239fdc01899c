"""``portcullis registry``: the compliance team's tool for the ComplianceRegistry (contracts/README.md).

``grant``, ``revoke``, ``freeze`` and ``unfreeze`` write records, signed with PORTCULLIS_REGISTRY_KEY or an
encrypted keystore; ``show``, ``history`` and ``roles`` read them. Every failure the operator can act on is a
typed RegistryCliError (or a RegistryInputError for bad input), printed as one line with exit code 2.

web3 and eth-account are imported inside the functions that use them: importing web3 takes about a second,
and every ``portcullis`` command builds this parser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from eth_hash.auto import keccak

from app.cli import registry_csv as rc
from app.cli.registry_countries import country_by_numeric
from app.settings import EligibilityRule, Settings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract

ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "artifacts" / "ComplianceRegistry.json"
# Anvil's / hardhat's well-known dev account #1 (mnemonic "test test ... junk"), which the development chain
# of `make run` seeds as the compliance account. Public: used only against that chain, never in production.
DEV_COMPLIANCE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_INFO_TIMEOUT = 5.0
DEFAULT_RECEIPT_TIMEOUT = 120.0
GAS_MARGIN_PERCENT = 20
LOG_CHUNK_BLOCKS = 50_000
ROLE_NAMES = ("DEFAULT_ADMIN_ROLE", "ATTESTER_ROLE", "REVOKER_ROLE", "PAUSER_ROLE")
RECORD_EVENTS = ("RecordSet", "RecordRevoked", "RecordFrozen", "RecordUnfrozen")
ROLE_EVENTS = ("RoleGranted", "RoleRevoked")
ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
PROGRESS_WIDTH = 30
# The per-record options of `grant` (argparse dest -> option), which a --csv file gives per row instead.
GRANT_OPTIONS: Mapping[str, str] = {
    "residence": "--residence",
    "investor_class": "--class",
    "kyc_level": "--kyc-level",
    "aml_risk": "--aml-risk",
    "flags": "--flags",
    "valid_until": "--valid-until",
    "subject": "--subject",
    "evidence": "--evidence",
}

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
    """A failure the operator can act on: printed as one line, exit code 2."""

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
            f"cannot reach the development server at {info_url} ({_reason(exc)}): is `make run` running?"
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


def resolve_target(settings: Settings, chain_id: int | None) -> Target:
    """The configured chain (``--chain`` or the first), else the development chain, else NoRegistryError."""
    if settings.chains:
        chain = settings.chains[0] if chain_id is None else settings.chain(chain_id)
        if chain is None:
            known = ", ".join(str(c.chain_id) for c in settings.chains)
            raise NoRegistryError(f"chain {chain_id} is not configured (PORTCULLIS_CHAINS has {known})")
        if chain.registry is None:
            raise NoRegistryError(
                f"no registry configured for chain {chain.chain_id}: "
                'set "registry" in its PORTCULLIS_CHAINS entry'
            )
        return Target(
            chain.chain_id,
            tuple(chain.rpc_urls),
            rc.checksum_address(chain.registry),
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


def _reason(exc: BaseException) -> str:
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
            failures.append(f"{redact_url(url)} ({_reason(exc)})")
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


def role_name(role: bytes) -> str:
    return next((name for name in ROLE_NAMES if role_id(name) == role), "0x" + role.hex())


def revert_data(exc: BaseException) -> bytes:
    """The raw revert data carried by a web3 contract error (empty when there is none)."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


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
        self.contract: Contract = w3.eth.contract(address=w3.to_checksum_address(target.registry), abi=abi)
        self.decoder = RevertDecoder(abi)
        self._abi = abi
        self._block_times: dict[int, int] = {}

    @classmethod
    def open(cls, target: Target) -> Session:
        w3 = connect(target)
        if not w3.eth.get_code(w3.to_checksum_address(target.registry)):
            raise NoRegistryError(f"no contract at registry {target.registry} on chain {target.chain_id}")
        return cls(target, w3, load_abi())

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
                f"the node refused to estimate {call.function}: {_rpc_message(exc)}"
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
        from web3.exceptions import TimeExhausted, Web3RPCError

        w3, address = self.session.w3, self.signer.address
        limit = int(w3.eth.get_block("latest")["gasLimit"])
        tx = self._bound(call).build_transaction(
            {
                "from": address,
                "nonce": w3.eth.get_transaction_count(address, "pending"),
                "gas": min(gas * (100 + GAS_MARGIN_PERCENT) // 100, limit),
                "chainId": self.session.target.chain_id,
            }
        )
        signed = self.signer.sign_transaction(tx)
        try:
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        except Web3RPCError as exc:
            raise TransactionError(f"the node refused {call.function}: {_rpc_message(exc)}") from None
        shown_hash = "0x" + bytes(tx_hash).hex()
        try:
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout, poll_latency=0.1)
        except TimeExhausted:
            raise TransactionError(
                f"{call.function} tx {shown_hash} was sent but not mined within {self.timeout:g} s "
                "(it may still be mined: check with `portcullis registry history`)"
            ) from None
        if receipt["status"] != 1:
            raise self._reverted(call, receipt["blockNumber"], shown_hash)
        return {"tx": shown_hash, "block": int(receipt["blockNumber"]), "gas_used": int(receipt["gasUsed"])}

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


def _rpc_message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------- output


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class Output:
    """Results on stdout (text or one JSON document), progress and errors on stderr."""

    def __init__(self, as_json: bool, out: TextIO, err: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def emit(self, data: Mapping[str, Any], lines: Sequence[str]) -> None:
        if self.as_json:
            self.out.write(json.dumps(_jsonable(dict(data)), sort_keys=True) + "\n")
        else:
            self.out.write("".join(line + "\n" for line in lines))

    def error(self, exc: BaseException) -> None:
        message = " ".join(str(exc).split())  # one line, whatever the message held
        self.err.write(f"portcullis registry: {message}\n")
        if self.as_json:
            self.out.write(json.dumps({"error": message, "type": type(exc).__name__}) + "\n")


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, one line per update otherwise."""

    def __init__(self, stream: TextIO, total: int, done: int) -> None:
        self.stream = stream
        self.total = total
        self.done = done
        self.tty = stream.isatty()

    def update(self, done: int, note: str) -> None:
        self.done = done
        share = done / self.total if self.total else 1.0
        bar = "#" * int(share * PROGRESS_WIDTH)
        line = f"[{bar:<{PROGRESS_WIDTH}}] {done}/{self.total} rows {note}"
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        if self.tty and done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def _write_lines(result: Mapping[str, Any], label: str) -> list[str]:
    if result["dry_run"]:
        return [
            f"dry run, nothing sent: {label}",
            f"  {result['function']}({json.dumps(_jsonable(result['args']))})",
            f"  from {result['from']}, estimated gas {result['estimated_gas']:,}",
        ]
    return [f"{label}: tx {result['tx']} in block {result['block']} (gas used {result['gas_used']:,})"]


# ---------------------------------------------------------------- commands


class Context:
    """What every command needs: settings, parsed options, the output, and the chain (opened lazily)."""

    def __init__(self, settings: Settings, args: argparse.Namespace, output: Output) -> None:
        self.settings = settings
        self.args = args
        self.output = output
        self._target: Target | None = None

    @property
    def target(self) -> Target:
        if self._target is None:
            self._target = resolve_target(self.settings, self.args.chain)
        return self._target

    def session(self) -> Session:
        return Session.open(self.target)

    def writer(self) -> Writer:
        signer = load_signer(self.settings, self.target)  # before connecting: a missing signer fails fast
        session = self.session()
        return Writer(session, signer, dry_run=self.args.dry_run, timeout=self.args.timeout)

    def where(self, session: Session) -> dict[str, Any]:
        return {"chain_id": session.target.chain_id, "registry": session.target.registry}


def _option_error(exc: rc.FieldError) -> rc.RegistryInputError:
    option = "ADDRESS" if exc.field == "address" else "--" + exc.field.replace("_", "-")
    return rc.RegistryInputError(f"{option}: {exc.reason}")


def _grant_text(args: argparse.Namespace) -> rc.GrantText:
    needed = {"--residence": args.residence, "--class": args.investor_class}
    needed |= {"--kyc-level": args.kyc_level, "--valid-until": args.valid_until}
    missing = [option for option, value in needed.items() if value is None]
    if missing:
        raise rc.RegistryInputError(f"grant ADDRESS needs {', '.join(missing)}")
    return rc.GrantText(
        address=args.address,
        residence=args.residence,
        investor_class=args.investor_class,
        kyc_level=args.kyc_level,
        valid_until=args.valid_until,
        aml_risk=args.aml_risk,
        flags=args.flags,
        subject=args.subject,
        evidence=args.evidence,
    )


def cmd_grant(ctx: Context) -> int:
    args = ctx.args
    if (args.address is None) == (args.csv is None):
        raise rc.RegistryInputError("grant needs either ADDRESS (with its options) or --csv FILE")
    if args.csv is not None:
        given = [option for dest, option in GRANT_OPTIONS.items() if getattr(args, dest) is not None]
        if given:
            raise rc.RegistryInputError(
                f"with --csv every row carries its own fields: drop {', '.join(given)}"
            )
        return grant_csv(ctx, Path(args.csv))
    try:
        grant = rc.parse_grant(_grant_text(args))
    except rc.FieldError as exc:
        raise _option_error(exc) from None
    writer = ctx.writer()
    try:
        rc.check_expiry(grant.record.valid_until, writer.session.now())
    except rc.FieldError as exc:
        raise _option_error(exc) from None
    call = Call(
        "setRecord",
        (grant.account, grant.record.as_abi()),
        {"account": grant.account, "input": rc.describe_input(grant.record)},
        f"grant {grant.account}: {rc.summary_line(grant.record)}",
    )
    result = writer.submit(call)
    ctx.output.emit(
        {"action": "grant", "account": grant.account, **ctx.where(writer.session), **result},
        _write_lines(result, call.label),
    )
    return 0


def _read_csv(path: Path) -> list[rc.GrantRow]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return rc.read_grant_csv(stream, path.name)
    except OSError as exc:
        raise rc.RegistryInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise rc.RegistryInputError(f"{path.name}: not UTF-8 text") from None


def _lines(rows: Sequence[rc.GrantRow]) -> str:
    return f"lines {rows[0].line}-{rows[-1].line}" if len(rows) > 1 else f"line {rows[0].line}"


def _batch_call(rows: Sequence[rc.GrantRow]) -> Call:
    accounts = [row.grant.account for row in rows]
    return Call(
        "setRecords",
        (accounts, [row.grant.record.as_abi() for row in rows]),
        {"accounts": accounts, "inputs": [rc.describe_input(row.grant.record) for row in rows]},
        f"grant {len(rows)} rows ({_lines(rows)})",
    )


def _pending(session: Session, rows: list[rc.GrantRow]) -> list[rc.GrantRow]:
    stored = session.records([row.grant.account for row in rows])
    return [
        row for row, have in zip(rows, stored, strict=True) if not rc.already_applied(row.grant.record, have)
    ]


def grant_csv(ctx: Context, path: Path) -> int:
    """Batches of at most --batch-size rows; rows whose on-chain record already equals them are skipped."""
    rows = _read_csv(path)
    writer = ctx.writer()
    rc.check_rows_expiry(path.name, rows, writer.session.now())
    pending = _pending(writer.session, rows)
    size = ctx.args.batch_size
    batches = [pending[i : i + size] for i in range(0, len(pending), size)]
    progress = Progress(ctx.output.err, len(rows), len(rows) - len(pending))
    results: list[dict[str, Any]] = []
    for number, batch in enumerate(batches, start=1):
        call = _batch_call(batch)
        try:
            result = writer.submit(call)
        except RegistryCliError as exc:
            exc.add_context(
                f"batch {number}/{len(batches)} ({_lines(batch)}) failed with "
                f"{progress.done}/{len(rows)} rows applied (re-run to resume)"
            )
            raise
        results.append({**result, "lines": [batch[0].line, batch[-1].line], "rows": len(batch)})
        note = "estimated" if result["dry_run"] else f"tx {result['tx']}"
        progress.update(progress.done + len(batch), f"batch {number}/{len(batches)} {note}")
    return _grant_csv_report(ctx, writer, path, rows, pending, results)


def _grant_csv_report(
    ctx: Context,
    writer: Writer,
    path: Path,
    rows: list[rc.GrantRow],
    pending: list[rc.GrantRow],
    results: list[dict[str, Any]],
) -> int:
    skipped = len(rows) - len(pending)
    verb = "would send" if writer.dry_run else "sent"
    lines = [f"{path.name}: {len(rows)} rows, {skipped} already applied, {verb} {len(pending)}"]
    for result in results:
        lines += [f"  lines {result['lines'][0]}-{result['lines'][1]}: {_batch_text(result)}"]
    data = {
        "action": "grant",
        "csv": str(path),
        **ctx.where(writer.session),
        "rows": len(rows),
        "skipped": skipped,
        "sent": 0 if writer.dry_run else len(pending),
        "dry_run": writer.dry_run,
        "batches": [{k: v for k, v in r.items() if k != "args"} for r in results],
    }
    ctx.output.emit(data, lines)
    return 0


def _batch_text(result: Mapping[str, Any]) -> str:
    if result["dry_run"]:
        return f"setRecords of {result['rows']} rows, estimated gas {result['estimated_gas']:,}"
    return f"tx {result['tx']} in block {result['block']} (gas used {result['gas_used']:,})"


def _address(text: str) -> str:
    return rc.parse_address(text)


def _simple_write(ctx: Context, action: str, call: Call) -> int:
    writer = ctx.writer()
    result = writer.submit(call)
    account = call.args[0]
    ctx.output.emit(
        {"action": action, "account": account, **ctx.where(writer.session), **result},
        _write_lines(result, call.label),
    )
    return 0


def cmd_revoke(ctx: Context) -> int:
    account, reason = _address(ctx.args.address), rc.reason_bytes32(ctx.args.reason)
    label = f"revoke {account} (reason {rc.reason_text(reason)!r})"
    return _simple_write(
        ctx, "revoke", Call("revoke", (account, reason), {"account": account, "reason": reason}, label)
    )


def cmd_freeze(ctx: Context) -> int:
    account, reason = _address(ctx.args.address), rc.reason_bytes32(ctx.args.reason)
    label = f"freeze {account} (reason {rc.reason_text(reason)!r})"
    return _simple_write(
        ctx, "freeze", Call("freeze", (account, reason), {"account": account, "reason": reason}, label)
    )


def cmd_unfreeze(ctx: Context) -> int:
    account = _address(ctx.args.address)
    return _simple_write(
        ctx, "unfreeze", Call("unfreeze", (account,), {"account": account}, f"unfreeze {account}")
    )


def rule_abi(rule: EligibilityRule) -> tuple[int, int, int, int, int]:
    """``IComplianceRegistry.Requirements`` from the chain's eligibility rule."""
    return (
        rule.required_flags,
        rule.forbidden_flags,
        rule.min_investor_class,
        rule.min_kyc_level,
        rule.max_aml_risk,
    )


def _show_lines(data: Mapping[str, Any]) -> list[str]:
    lines = [
        f"account       {data['account']}",
        f"chain         {data['chain_id']} registry {data['registry']}",
    ]
    record = data["record"]
    if record is None:
        lines.append("record        none")
    else:
        country = country_by_numeric(record["residence_numeric"])
        lines += [
            f"status        {record['status']}",
            f"residence     {record['residence']} ({record['residence_numeric']}"
            f"{', ' + country.name if country else ''})",
            f"class         {record['class']}",
            f"kyc level     {record['kyc_level']}",
            f"aml risk      {record['aml_risk']}",
            f"flags         {', '.join(record['flags']) or '-'}",
            f"valid until   {record['valid_until']} (expires {record['expires_at']})",
            f"verified at   {record['verified_at']} by {record['attester']}",
            f"subject id    {record['subject_id']}",
            f"evidence ref  {record['evidence_ref']}",
        ]
        if record["revoked"]:
            lines.append(f"revoked       {record['revoked_at']} (reason {record['revocation_reason']!r})")
    rule = data["rule"]
    rule_text = (
        f"required {','.join(rule['required_flags']) or '-'}, "
        f"forbidden {','.join(rule['forbidden_flags']) or '-'}, "
        f"class >= {rule['min_class']}, kyc >= {rule['min_kyc_level']}, aml <= {rule['max_aml_risk']}"
    )
    lines += [
        f"verified      {'yes' if data['verified'] else 'no'} (isVerified)",
        f"eligible      {'yes' if data['eligible'] else 'no'} (isEligible: {rule_text})",
    ]
    if data["paused"]:
        lines.append("registry      PAUSED (grants and unfreezes are blocked)")
    return lines


def cmd_show(ctx: Context) -> int:
    account = _address(ctx.args.address)
    session = ctx.session()
    functions = session.contract.functions
    record = session.record(account)
    rule = session.target.eligibility
    data = {
        "account": account,
        **ctx.where(session),
        "record": rc.describe_stored(record, session.now()) if record.exists else None,
        "verified": bool(functions.isVerified(account).call()),
        "eligible": bool(functions.isEligible(account, rule_abi(rule)).call()),
        "rule": rc.describe_rule(rule),
        "paused": bool(functions.paused().call()),
    }
    ctx.output.emit(data, _show_lines(data))
    return 0


def _event_details(event: Any) -> dict[str, Any]:
    name, values = event["event"], event["args"]
    if name == "RecordSet":
        record = rc.StoredRecord.from_abi(values["record"])
        return {
            "by": values["attester"],
            "record": rc.describe_input(record),
            "text": rc.summary_line(record),
        }
    if name == "RecordUnfrozen":
        return {"by": values["by"], "text": ""}
    by = values["revoker"] if name == "RecordRevoked" else values["by"]
    reason = rc.reason_text(values["reason"])
    return {"by": by, "reason": reason, "text": f"reason {reason!r}"}


def cmd_history(ctx: Context) -> int:
    account = _address(ctx.args.address)
    session = ctx.session()
    events = []
    for event in session.logs(RECORD_EVENTS, ctx.args.from_block, account_topic(account)):
        block = int(event["blockNumber"])
        events.append(
            {
                "event": event["event"],
                "block": block,
                "tx": "0x" + bytes(event["transactionHash"]).hex(),
                "time": rc.iso_time(session.block_time(block)),
                "revision": int(event["args"]["revision"]),
                **_event_details(event),
            }
        )
    lines = [f"{account}: {len(events)} events on chain {session.target.chain_id}"]
    lines += [
        " ".join(
            part
            for part in (e["time"], f"block {e['block']}", f"{e['event']:<14}", f"by {e['by']}", e["text"])
            if part
        )
        + f" tx {e['tx']}"
        for e in events
    ]
    for e in events:
        e.pop("text")
    ctx.output.emit({"account": account, **ctx.where(session), "events": events}, lines)
    return 0


def cmd_roles(ctx: Context) -> int:
    session = ctx.session()
    candidates: dict[bytes, set[str]] = {}
    for event in session.logs(ROLE_EVENTS, ctx.args.from_block):
        candidates.setdefault(bytes(event["args"]["role"]), set()).add(event["args"]["account"])
    for name in ROLE_NAMES:
        candidates.setdefault(role_id(name), set())
    has_role = session.contract.functions.hasRole
    roles = {
        role_name(role): sorted(a for a in accounts if has_role(role, a).call())
        for role, accounts in sorted(candidates.items(), key=lambda item: _role_order(item[0]))
    }
    lines = [f"roles on registry {session.target.registry} (chain {session.target.chain_id})"]
    lines += [f"{name:<20} {', '.join(holders) or '-'}" for name, holders in roles.items()]
    ctx.output.emit({**ctx.where(session), "roles": roles}, lines)
    return 0


def _role_order(role: bytes) -> tuple[int, str]:
    name = role_name(role)
    return (ROLE_NAMES.index(name) if name in ROLE_NAMES else len(ROLE_NAMES), name)


COMMANDS: Mapping[str, Callable[[Context], int]] = {
    "grant": cmd_grant,
    "revoke": cmd_revoke,
    "freeze": cmd_freeze,
    "unfreeze": cmd_unfreeze,
    "show": cmd_show,
    "history": cmd_history,
    "roles": cmd_roles,
}


# ---------------------------------------------------------------- the command line


def _batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= rc.MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be 1..{rc.MAX_BATCH}")
    return value


def _common_options(parser: argparse.ArgumentParser, *, write: bool, defaults: bool) -> None:
    """The global options. On the ``registry`` parser they carry the defaults; on each subcommand they are
    SUPPRESSed unless given, so ``registry --json show X`` and ``registry show X --json`` mean the same."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--chain", type=int, default=default(None), help="chain id (default: the first configured)"
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="machine-readable output")
    if write:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            default=default(False),
            help="print what would be sent; send nothing",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=default(DEFAULT_RECEIPT_TIMEOUT),
            help=f"seconds to wait for each receipt (default {DEFAULT_RECEIPT_TIMEOUT:g})",
        )


def _add_grant(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grant = actions.add_parser("grant", help="write a record (one wallet, or a CSV of them)")
    _common_options(grant, write=True, defaults=False)
    grant.add_argument("address", nargs="?", metavar="ADDRESS", help="the wallet (checksummed or lowercase)")
    grant.add_argument("--csv", metavar="FILE", help="grant every row of FILE (see docs/REGISTRY_CLI.md)")
    grant.add_argument(
        "--batch-size", type=_batch_size, default=rc.MAX_BATCH, help="rows per transaction (<= 100)"
    )
    grant.add_argument("--residence", metavar="CC", help="ISO 3166-1 alpha-2, alpha-3 or numeric")
    grant.add_argument(
        "--class", dest="investor_class", metavar="CLASS", help="retail|professional|eligible_counterparty"
    )
    grant.add_argument("--kyc-level", metavar="N", help="1 simplified, 2 standard, 3 enhanced")
    grant.add_argument("--aml-risk", metavar="N", help="1 low (default), 2 medium, 3 high")
    grant.add_argument(
        "--flags", help="comma-separated: us_person,appropriateness_derivatives,accredited,pep"
    )
    grant.add_argument("--valid-until", metavar="DATE", help="YYYY-MM-DD (valid through that day, UTC)")
    grant.add_argument("--subject", metavar="ID", help="links one person's wallets (hashed unless 0x+64 hex)")
    grant.add_argument("--evidence", metavar="REF", help="points to the KYC files (hashed unless 0x+64 hex)")


def _add_writes(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (("revoke", "revoke a record"), ("freeze", "freeze a wallet (emergency)")):
        parser = actions.add_parser(name, help=help_text)
        _common_options(parser, write=True, defaults=False)
        parser.add_argument("address", metavar="ADDRESS")
        parser.add_argument("--reason", required=True, help="up to 32 bytes of UTF-8 (e.g. a case number)")
    unfreeze = actions.add_parser("unfreeze", help="clear the FROZEN flag")
    _common_options(unfreeze, write=True, defaults=False)
    unfreeze.add_argument("address", metavar="ADDRESS")


def _add_reads(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = actions.add_parser("show", help="a wallet's record, verification and eligibility")
    _common_options(show, write=False, defaults=False)
    show.add_argument("address", metavar="ADDRESS")
    history = actions.add_parser("history", help="a wallet's record events, oldest first")
    _common_options(history, write=False, defaults=False)
    history.add_argument("address", metavar="ADDRESS")
    roles = actions.add_parser("roles", help="who holds which role")
    _common_options(roles, write=False, defaults=False)
    for parser in (history, roles):
        parser.add_argument(
            "--from-block", type=int, default=0, help="first block to search (deployment block)"
        )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``registry`` and its subcommands to the ``portcullis`` parser; sets ``fn=run``."""
    registry = sub.add_parser("registry", help="the on-chain ComplianceRegistry (grant, revoke, show, ...)")
    _common_options(registry, write=True, defaults=True)
    actions = registry.add_subparsers(dest="registry_command", metavar="COMMAND", required=True)
    _add_grant(actions)
    _add_writes(actions)
    _add_reads(actions)
    registry.set_defaults(fn=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``registry`` subcommand: 0 on success, 2 and one line on stderr for any error to fix."""
    from web3.exceptions import Web3Exception

    output = Output(args.json, sys.stdout, sys.stderr)
    try:
        return COMMANDS[args.registry_command](Context(settings, args, output))
    except (RegistryCliError, rc.RegistryInputError) as exc:
        output.error(exc)
    except OSError as exc:  # the RPC went away in the middle of a command
        output.error(RpcUnreachableError(f"RPC unreachable ({_reason(exc)})"))
    except Web3Exception as exc:
        output.error(RegistryCliError(f"the node answered with an error: {_rpc_message(exc)}"))
    return 2
