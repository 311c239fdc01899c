"""Development chain: an embedded EVM (py-evm) with the ComplianceRegistry deployed and demo wallets seeded.

``make run`` needs no node. :class:`DevChain` builds a chain with id 31337 whose genesis funds the ten
accounts of the well-known development mnemonic (hardhat/anvil ``test test ... junk``), deploys
``ComplianceRegistry`` from the committed artifact (admin: account #0), gives account #1 the ATTESTER,
REVOKER and PAUSER roles, and writes records for the demo wallets #2..#4, all in block 1. It answers
JSON-RPC in process (:meth:`DevChain.handle`, :class:`DevChainProvider`) and over HTTP
(:func:`dev_chain_routes`, development mode only). The keys are public: never use them anywhere else.

See docs/DEV_CHAIN.md for the accounts, the records and the time model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.typing import AccountState, HeaderParams
from eth.vm.forks.cancun import CancunVM
from eth_abi.abi import encode
from eth_keys.datatypes import PrivateKey
from eth_typing import Address, BlockNumber, ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from app import strict_json
from app.chain import artifacts
from app.chain.devchain_journal import (
    RESET_HINT,
    DevChainJournal,
    JournalError,
    JournalHeader,
    journal_path,
)
from app.chain.devchain_rpc import (
    INVALID_REQUEST,
    PARSE_ERROR,
    EvmRpc,
    Json,
    ReplayError,
    RpcError,
    RpcResponse,
    TxRequest,
    contract_address,
    error_response,
)
from app.clock import Clock, SystemClock

DEV_CHAIN_ID = 31337
DEV_MNEMONIC = "test test test test test test test test test test test junk"  # m/44'/60'/0'/0/i
RPC_PATH = "/dev/chain/rpc"
INFO_PATH = "/dev/chain/info"
MAX_RPC_BODY = 1024 * 1024
# py_ecc (imported by eth-account and py-evm) raises the recursion limit to 100000, so json.loads no longer
# stops deep nesting with RecursionError before the C stack overflows: refuse deep bodies before parsing.
MAX_JSON_DEPTH = 32
GAS_LIMIT = 30_000_000  # per block, like anvil
DEV_BALANCE = 10_000 * 10**18  # wei per account, like anvil
RECORD_VALIDITY = timedelta(days=365)  # demo records expire a year after start-up

REGISTRY = "ComplianceRegistry"
ATTESTER_ROLE = keccak(text="ATTESTER_ROLE")
REVOKER_ROLE = keccak(text="REVOKER_ROLE")
PAUSER_ROLE = keccak(text="PAUSER_ROLE")
FLAG_US_PERSON = 0x01
FLAG_APPROPRIATENESS_DERIVATIVES = 0x02
FLAG_ACCREDITED = 0x04
RECORD_INPUT = "(uint16,uint8,uint8,uint8,uint32,uint64,bytes32,bytes32)"


def _checksummed(address: str) -> ChecksumAddress:
    """``address`` as typed, after checking that it is spelled with its EIP-55 checksum."""
    checksummed = to_checksum_address(address)
    if checksummed != address:
        raise ValueError(f"{address} is not EIP-55 checksummed")
    return checksummed


@dataclass(frozen=True)
class DemoRecord:
    """A registry record seeded at start-up (codes as contracts/README.md defines them)."""

    label: str
    residence: int  # ISO 3166-1 numeric
    investor_class: int  # 1 retail, 2 professional, 3 eligible counterparty
    kyc_level: int
    aml_risk: int
    flags: int


@dataclass(frozen=True)
class DevAccount:
    index: int
    address: ChecksumAddress
    private_key: str  # public development key
    role: str
    record: DemoRecord | None = None


DEV_ACCOUNTS: tuple[DevAccount, ...] = (
    DevAccount(
        0,
        _checksummed("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "admin: deployer, DEFAULT_ADMIN_ROLE",
    ),
    DevAccount(
        1,
        _checksummed("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "compliance key: ATTESTER_ROLE, REVOKER_ROLE, PAUSER_ROLE",
    ),
    DevAccount(
        2,
        _checksummed("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "demo wallet",
        DemoRecord(
            "professional investor, Germany, derivatives appropriateness",
            276,
            2,
            2,
            1,
            FLAG_APPROPRIATENESS_DERIVATIVES,
        ),
    ),
    DevAccount(
        3,
        _checksummed("0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "demo wallet",
        DemoRecord("retail investor, France, no derivatives appropriateness", 250, 1, 2, 1, 0),
    ),
    DevAccount(
        4,
        _checksummed("0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"),
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "demo wallet",
        DemoRecord(
            "US person, accredited, derivatives appropriateness",
            840,
            2,
            3,
            1,
            FLAG_US_PERSON | FLAG_APPROPRIATENESS_DERIVATIVES | FLAG_ACCREDITED,
        ),
    ),
    DevAccount(
        5,
        _checksummed("0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc"),
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "funded, no record",
    ),
    DevAccount(
        6,
        _checksummed("0x976EA74026E726554dB657fA54763abd0C3a0aa9"),
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "funded, no record",
    ),
    DevAccount(
        7,
        _checksummed("0x14dC79964da2C08b23698B3D3cc7Ca32193d9955"),
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "funded, no record",
    ),
    DevAccount(
        8,
        _checksummed("0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"),
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "funded, no record",
    ),
    DevAccount(
        9,
        _checksummed("0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"),
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
        "funded, no record",
    ),
)
ADMIN = DEV_ACCOUNTS[0]
COMPLIANCE = DEV_ACCOUNTS[1]


def _raw(address: str) -> Address:
    return Address(bytes.fromhex(address.removeprefix("0x")))


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


class _DevMiningChain(MiningChain):
    chain_id = DEV_CHAIN_ID
    vm_configuration = ((BlockNumber(0), CancunVM),)  # the contracts are compiled for cancun

    def create_header_from_parent(
        self, parent_header: BlockHeaderAPI, **header_params: HeaderParams
    ) -> BlockHeaderAPI:
        # Keep the gas limit fixed: py-evm's default drifts it the way mainnet miners voted.
        header_params.setdefault("gas_limit", parent_header.gas_limit)
        return super().create_header_from_parent(parent_header, **header_params)


def _genesis(timestamp: int) -> MiningChain:
    state: AccountState = {
        _raw(account.address): {"balance": DEV_BALANCE, "nonce": 0, "code": b"", "storage": {}}
        for account in DEV_ACCOUNTS
    }
    params: dict[str, HeaderParams] = {
        "coinbase": Address(b"\x00" * 20),
        "difficulty": 0,  # post-merge
        "extra_data": b"",
        "gas_limit": GAS_LIMIT,
        "mix_hash": b"\x00" * 32,
        "nonce": b"\x00" * 8,
        "timestamp": timestamp,
    }
    chain = _DevMiningChain.from_genesis(AtomicDB(), params, state)
    assert isinstance(chain, MiningChain)
    return chain


def _seed_requests(registry: bytes, valid_until: int) -> list[TxRequest]:
    """Deploy the registry, grant #1 its roles, write the demo records: one block, fixed gas limits."""
    admin, compliance = _raw(ADMIN.address), _raw(COMPLIANCE.address)
    grant = _selector("grantRole(bytes32,address)")
    demo = [account for account in DEV_ACCOUNTS if account.record is not None]
    inputs = [
        (r.residence, r.investor_class, r.kyc_level, r.aml_risk, r.flags, valid_until, *_demo_hashes(a.index))
        for a in demo
        if (r := a.record) is not None
    ]
    set_records = _selector(f"setRecords(address[],{RECORD_INPUT}[])") + encode(
        ["address[]", f"{RECORD_INPUT}[]"], [[a.address for a in demo], inputs]
    )
    return [
        TxRequest(
            sender=admin,
            data=artifacts.bytecode(REGISTRY) + encode(["address"], [ADMIN.address]),
            gas=4_000_000,
        ),
        *(
            TxRequest(
                sender=admin,
                to=registry,
                data=grant + encode(["bytes32", "address"], [role, COMPLIANCE.address]),
                gas=200_000,
            )
            for role in (ATTESTER_ROLE, REVOKER_ROLE, PAUSER_ROLE)
        ),
        TxRequest(sender=compliance, to=registry, data=set_records, gas=2_000_000),
    ]


def _demo_hashes(index: int) -> tuple[bytes, bytes]:
    """subjectId and evidenceRef of a demo record: fixed, non-zero, obviously synthetic."""
    return keccak(text=f"portcullis-dev-subject-{index}"), keccak(text=f"portcullis-dev-evidence-{index}")


class DevChain:
    """The development chain: registry deployed at ``registry_address``, demo records seeded.

    Built once per server start (``make run``); everything lives in this object, nothing in the module.
    With a ``journal`` every mined block is written to it, and a chain found in it is rebuilt block by block
    instead of seeding a new one (docs/DEV_CHAIN.md, "State"); :meth:`close` releases the file.
    """

    def __init__(self, *, clock: Clock | None = None, journal: DevChainJournal | None = None) -> None:
        clock = clock or SystemClock()
        self.chain_id = DEV_CHAIN_ID
        self.accounts = DEV_ACCOUNTS
        self.journal = journal
        header, blocks = journal.read() if journal is not None else (None, [])
        registry_code = hashlib.sha256(artifacts.bytecode(REGISTRY)).hexdigest()
        if header is None:
            now = int(clock.now().timestamp())
            header = JournalHeader(DEV_CHAIN_ID, now - 1, registry_code)  # block 1 may carry the time now
        elif journal is not None:
            _check_header(journal, header, registry_code)
        self._rpc = EvmRpc(
            _genesis(header.genesis_timestamp),
            chain_id=DEV_CHAIN_ID,
            clock=clock,
            signers={_raw(a.address): PrivateKey(bytes.fromhex(a.private_key[2:])) for a in DEV_ACCOUNTS},
            client_version=f"portcullis-devchain/py-evm-{version('py-evm')}",
            on_mined=journal.append if journal is not None else None,
        )
        registry = contract_address(_raw(ADMIN.address), 0)
        self.registry_address: ChecksumAddress = to_checksum_address(registry)
        self.restored_blocks = len(blocks)
        if blocks:
            assert journal is not None
            try:
                self._rpc.replay(blocks)
            except ReplayError as exc:
                raise JournalError(
                    f"the development chain journal {journal.path} does not replay ({exc}): {RESET_HINT}"
                ) from None
            return
        if journal is not None:
            journal.start(header)
        valid_until = header.genesis_timestamp + 1 + int(RECORD_VALIDITY.total_seconds())
        for applied in self._rpc.transact(_seed_requests(registry, valid_until)):
            if not applied.success:
                raise RuntimeError(f"dev chain set-up transaction failed: 0x{applied.output.hex()}")

    def close(self) -> None:
        """Release the journal (the chain itself stays readable in memory)."""
        if self.journal is not None:
            self.journal.close()

    async def handle(self, payload: Json) -> RpcResponse | list[RpcResponse] | None:
        """Answer a JSON-RPC request or batch (already parsed JSON) on a worker thread.

        None when the payload held only notifications (nothing to send back).
        """
        return await anyio.to_thread.run_sync(self._rpc.handle, payload)

    def handle_sync(self, payload: Json) -> RpcResponse | list[RpcResponse] | None:
        """:meth:`handle` on the calling thread, for synchronous callers."""
        return self._rpc.handle(payload)

    @property
    def methods(self) -> frozenset[str]:
        """The JSON-RPC methods :meth:`handle` answers."""
        return self._rpc.methods

    def info(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "registry": self.registry_address,
            "rpc_url_path": RPC_PATH,
            "admin_account": ADMIN.address,
            "compliance_account": COMPLIANCE.address,
            # `portcullis registry` appends this to a missing-role error (docs/REGISTRY_CLI.md).
            "compliance_key_hint": f"{COMPLIANCE.address} (development account #1, see docs/DEV_CHAIN.md)",
            "demo_accounts": [
                {
                    "index": account.index,
                    "address": account.address,
                    "label": record.label,
                    "residence": record.residence,
                    "investor_class": record.investor_class,
                    "kyc_level": record.kyc_level,
                    "aml_risk": record.aml_risk,
                    "flags": record.flags,
                }
                for account in self.accounts
                if (record := account.record) is not None
            ],
        }


def open_dev_chain(data_dir: Path, *, clock: Clock | None = None) -> DevChain:
    """The development chain kept in ``data_dir`` (rebuilt from its journal, or new and journalled there).

    Raises JournalError (one line saying what to do) when the journal is unreadable, belongs to another
    build, or is held by another server."""
    journal = DevChainJournal(journal_path(data_dir))
    try:
        return DevChain(clock=clock, journal=journal)
    except BaseException:
        journal.close()
        raise


def _check_header(journal: DevChainJournal, header: JournalHeader, registry_code: str) -> None:
    if header.chain_id != DEV_CHAIN_ID:
        raise JournalError(
            f"the development chain journal {journal.path} is for chain {header.chain_id},"
            f" not {DEV_CHAIN_ID}: {RESET_HINT}"
        )
    if header.registry_code != registry_code:
        # The chain runs the registry it was created with; the server would read it with the new ABI.
        raise JournalError(
            f"the development chain in {journal.path} was created with another build of {REGISTRY}"
            f" (contracts/ changed since): {RESET_HINT}"
        )


# -- web3.py providers (in process, no HTTP) ----------------------------------------------------------


class DevChainProvider(AsyncJSONBaseProvider):
    """``AsyncWeb3(DevChainProvider(chain))``: JSON-encoded requests as over HTTP, but no socket."""

    def __init__(self, chain: DevChain) -> None:
        super().__init__()
        self._chain = chain

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        response = await self._chain.handle(json.loads(self.encode_rpc_request(method, params)))
        return cast(RPCResponse, response)

    async def make_batch_request(
        self, requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        response = await self._chain.handle(json.loads(self.encode_batch_rpc_request(requests)))
        return cast(list[RPCResponse] | RPCResponse, response)

    async def is_connected(self, show_traceback: bool = False) -> bool:
        return True


class DevChainSyncProvider(JSONBaseProvider):
    """``Web3(DevChainSyncProvider(chain))``: the synchronous twin of :class:`DevChainProvider`."""

    def __init__(self, chain: DevChain) -> None:
        super().__init__()
        self._chain = chain

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        response = self._chain.handle_sync(json.loads(self.encode_rpc_request(method, params)))
        return cast(RPCResponse, response)

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        response = self._chain.handle_sync(json.loads(self.encode_batch_rpc_request(requests)))
        return cast(list[RPCResponse] | RPCResponse, response)

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


# -- HTTP (development mode only) ----------------------------------------------------------------------


# One JSON token at a time: filler, then a whole string or one bracket. Possessive, so linear in the body.
_JSON_TOKEN = re.compile(rb'[^"\[\]{}]*+(?:"(?:[^"\\]|\\.)*+"|[\[\]{}])')


def _nested_deeper_than(body: bytes, limit: int) -> bool:
    depth, position = 0, 0
    while (token := _JSON_TOKEN.match(body, position)) is not None:
        position = token.end()
        last = body[position - 1]
        if last in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif last in b"]}":
            depth -= 1
    return False


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def dev_chain_routes(chain: DevChain) -> list[Route]:
    """``POST /dev/chain/rpc`` (JSON-RPC 2.0) and ``GET /dev/chain/info``; mount in development only."""

    async def rpc(request: Request) -> Response:
        try:
            body = await _read_capped(request, MAX_RPC_BODY)
        except ClientDisconnect:
            return Response(status_code=400)
        if body is None:
            too_large = RpcError(INVALID_REQUEST, f"request body exceeds {MAX_RPC_BODY} bytes")
            return JSONResponse(error_response(None, too_large), status_code=413)
        if _nested_deeper_than(body, MAX_JSON_DEPTH):
            too_deep = RpcError(INVALID_REQUEST, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            return JSONResponse(error_response(None, too_deep))
        try:
            payload = strict_json.loads(body)  # no lone surrogate reaches a reply that must encode as UTF-8
        except strict_json.JsonRejected:
            # JSON-RPC answers a parse error with HTTP 200 and id null.
            return JSONResponse(error_response(None, RpcError(PARSE_ERROR, "parse error")))
        response = await chain.handle(payload)
        if response is None:
            return Response(status_code=204)  # only notifications: nothing to return
        return JSONResponse(response)

    async def info(request: Request) -> Response:
        return JSONResponse(chain.info())

    return [Route(RPC_PATH, rpc, methods=["POST"]), Route(INFO_PATH, info, methods=["GET"])]
