"""A real EVM for tests: anvil (Foundry) on a free loopback port, plus helpers for contracts/artifacts/.

    with Anvil() as chain:
        registry = deploy(chain.w3, "ComplianceRegistry", chain.accounts[0], sender=chain.accounts[0])

The binary comes from `npm ci --prefix contracts` (or PORTCULLIS_ANVIL_BIN); when it is missing, entering
`Anvil` skips the test with a reason saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "contracts" / "artifacts"
BIN_ENV = "PORTCULLIS_ANVIL_BIN"
DEFAULT_BIN = REPO_ROOT / "contracts" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
CHAIN_ID = 31337

# The first ten accounts of anvil's default mnemonic "test test ... junk" (m/44'/60'/0'/0/i), each funded with
# 10,000 ETH. Public test keys: never use them anywhere but a local dev chain.
DEV_PRIVATE_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


class AnvilError(RuntimeError):
    """anvil did not start, or stopped answering."""


def anvil_binary_path() -> Path:
    """Where anvil should be: PORTCULLIS_ANVIL_BIN if set, else where `npm ci --prefix contracts` puts it."""
    configured = os.environ.get(BIN_ENV)
    return Path(configured) if configured else DEFAULT_BIN


def find_anvil_binary() -> Path | None:
    """The anvil binary, or None when it is not installed (or not executable)."""
    path = anvil_binary_path()
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Anvil:
    """anvil as a context manager: started on enter (ready when `eth_chainId` answers), stopped on exit."""

    def __init__(
        self,
        *,
        block_time: float | None = None,
        binary: Path | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        port: int | None = None,
    ) -> None:
        """``port``: listen there (a test's own port range) instead of on a free port."""
        self.block_time = block_time
        self.fixed_port = port
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.dev_accounts: list[LocalAccount] = [Account.from_key(key) for key in DEV_PRIVATE_KEYS]
        self.w3: Web3  # set on enter, once anvil answers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accounts(self) -> list[str]:
        """The funded dev accounts' checksum addresses (unlocked in anvil: `transact({"from": a})` works)."""
        return [account.address for account in self.dev_accounts]

    @property
    def private_keys(self) -> list[str]:
        return list(DEV_PRIVATE_KEYS)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> Anvil:
        binary = self.binary or find_anvil_binary()
        if binary is None:
            where = anvil_binary_path()
            pytest.skip(f"anvil not found at {where}: run `npm ci --prefix contracts` (or set {BIN_ENV})")
        # A free port can be taken between probing and anvil binding it; try a few.
        last_error: Exception | None = None
        for _ in range(3):
            try:
                self._start(binary)
            except AnvilError as exc:
                last_error = exc
                self._stop()
                continue
            except BaseException:
                self._stop()
                raise
            self.w3 = Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))
            return self
        raise AnvilError(f"anvil did not start: {last_error}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _start(self, binary: Path) -> None:
        self.port = self.fixed_port or _free_port()
        command = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(CHAIN_ID),
            "--silent",
        ]
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
        # anvil's output goes to a file (a pipe nobody reads could fill and block it); closed in _stop.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AnvilError(f"exited with {self._process.returncode}: {self._output()}")
            if self._chain_id() == CHAIN_ID:
                return
            time.sleep(0.05)
        raise AnvilError(f"no eth_chainId answer within {self.start_timeout}s: {self._output()}")

    def _chain_id(self) -> int | None:
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        try:
            response = httpx.post(self.url, json=body, timeout=1.0)
            return int(response.json()["result"], 16)
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text: str = self._log.read().decode(errors="replace").strip()
        return text[-2000:] or "(no output)"

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    # ------------------------------------------------------------------ chain control

    def rpc(self, method: str, *params: Any) -> Any:
        """A raw JSON-RPC call (evm_snapshot, evm_increaseTime, ...); raises AnvilError on an error answer."""
        response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        if "error" in response:
            raise AnvilError(f"{method}: {response['error']}")
        return response["result"]

    def snapshot(self) -> str:
        result: str = self.rpc("evm_snapshot")
        return result

    def revert(self, snapshot_id: str) -> None:
        if self.rpc("evm_revert", snapshot_id) is not True:
            raise AnvilError(f"evm_revert({snapshot_id}) refused")

    def increase_time(self, seconds: int) -> None:
        """Move the clock forward and mine a block, so `block.timestamp` in the next call reflects it."""
        self.rpc("evm_increaseTime", seconds)
        self.rpc("evm_mine")

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


def load_artifact(name: str) -> dict[str, Any]:
    """contracts/artifacts/<name>.json, as written by contracts/script/build.mjs."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `node contracts/script/build.mjs`")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def contract_at(w3: Web3, artifact_name: str, address: str) -> Contract:
    """A handle on a deployed contract with the ABI of `artifact_name`."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(artifact_name)["abi"])


def deploy(w3: Web3, artifact_name: str, *args: Any, sender: str) -> Contract:
    """Deploy `artifact_name` with constructor `args` from the unlocked account `sender`; wait until mined."""
    artifact = load_artifact(artifact_name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1 or receipt["contractAddress"] is None:
        raise AnvilError(f"deploying {artifact_name} failed: {receipt}")
    return contract_at(w3, artifact_name, receipt["contractAddress"])


def send(fn: Any, sender: str) -> Any:
    """Transact a bound contract function from the unlocked account `sender`; return the mined receipt."""
    w3: Web3 = fn.w3
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}), timeout=30)
    if receipt["status"] != 1:
        raise AnvilError(f"transaction failed: {receipt}")
    return receipt


def selector(signature: str) -> bytes:
    """The 4-byte selector of an error or function signature, e.g. "ComplianceRegistryNoRecord(address)"."""
    return bytes(Web3.keccak(text=signature)[:4])


def revert_data(exc: BaseException) -> bytes:
    """The raw revert data carried by a web3 contract error (empty when there is none)."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x"):
        return b""
    return bytes.fromhex(data[2:])


@contextlib.contextmanager
def reverts(signature: str, *args: Any) -> Iterator[None]:
    """Expect a revert with exactly the custom error `signature` (flat argument types only); when `args` are
    given, the decoded arguments must equal them (addresses compared case-insensitively)."""
    with pytest.raises((ContractCustomError, ContractLogicError)) as info:
        yield
    data = revert_data(info.value)
    assert data[:4] == selector(signature), f"expected {signature}, got revert data 0x{data.hex()}"
    if args:
        match = re.fullmatch(r"\w+\((.*)\)", signature)
        assert match, f"not an error signature: {signature}"
        types = [t for t in match.group(1).split(",") if t]
        assert [_comparable(v) for v in decode(types, data[4:])] == [_comparable(v) for v in args]


def _comparable(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value
