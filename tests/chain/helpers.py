"""Helpers for the chain reader tests: deployments, record writing, settings, and two RPC wrappers/servers.

``CountingRpc`` is a real wrapper: every call goes through to the real client (and anvil); it only counts.
``HangingServer`` is a TCP server that accepts connections and never answers (an RPC that hangs).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.contract import Contract

from app.chain.rpc import Web3Rpc
from app.chain.types import BlockRef, Log, LogFilter
from app.settings import ChainSettings
from tests.anvil import CHAIN_ID, Anvil, deploy, send

ATTESTER_ROLE = Web3.keccak(text="ATTESTER_ROLE")
REVOKER_ROLE = Web3.keccak(text="REVOKER_ROLE")
US_PERSON, APPROPRIATENESS, ACCREDITED, FROZEN, PEP = (1 << i for i in range(5))
GERMANY, FRANCE, UNITED_STATES = 276, 250, 840
YEAR = 365 * 24 * 3600
REASON = b"AML-CASE-0001".ljust(32, b"\x00")
SCHEMA = "0x" + bytes(Web3.keccak(text="portcullis.kyc(bool passed)")).hex()
OTHER_SCHEMA = "0x" + bytes(Web3.keccak(text="something.else(uint256 x)")).hex()
# Retail derivatives access, the example of contracts/README.md.
RETAIL_DERIVATIVES = {
    "required_flags": APPROPRIATENESS,
    "forbidden_flags": US_PERSON | FROZEN,
    "min_investor_class": 1,
    "min_kyc_level": 2,
    "max_aml_risk": 2,
}


@dataclass
class World:
    """Everything deployed once per test package, and who may write to what."""

    w3: Web3
    admin: str
    attester: str
    revoker: str  # anvil dev account 2: its key signs raw transactions in the reorg test
    agent: str  # sanctions list owner and identity registry agent
    eas_attester: str  # trusted by the EAS source
    stranger: str  # an EAS attester nobody trusts
    registry: Contract
    multicall: Contract
    sanctions: Contract
    eas: Contract
    identity: Contract
    erc20: Contract
    erc721: Contract
    erc1155: Contract


def deploy_world(evm: Anvil) -> World:
    w3 = evm.w3
    admin, attester, revoker, agent, eas_attester, stranger = evm.accounts[:6]
    registry = deploy(w3, "ComplianceRegistry", admin, sender=admin)
    send(registry.functions.grantRole(ATTESTER_ROLE, attester), admin)
    send(registry.functions.grantRole(REVOKER_ROLE, revoker), admin)
    return World(
        w3=w3,
        admin=admin,
        attester=attester,
        revoker=revoker,
        agent=agent,
        eas_attester=eas_attester,
        stranger=stranger,
        registry=registry,
        multicall=deploy(w3, "StandinMulticall", sender=admin),
        sanctions=deploy(w3, "StandinSanctionsList", agent, sender=admin),
        eas=deploy(w3, "StandinEAS", sender=admin),
        identity=deploy(w3, "StandinIdentityRegistry", agent, sender=admin),
        erc20=deploy(w3, "StandinERC20", sender=admin),
        erc721=deploy(w3, "StandinERC721", sender=admin),
        erc1155=deploy(w3, "StandinERC1155", sender=admin),
    )


def new_wallet() -> str:
    return str(Account.create().address)


def record_input(evm: Anvil, account: str, **overrides: Any) -> tuple[Any, ...]:
    """A RecordInput tuple: Germany, retail, standard KYC, low risk, derivatives-appropriate, valid a year."""
    values: dict[str, Any] = {
        "residence": GERMANY,
        "investorClass": 1,
        "kycLevel": 2,
        "amlRisk": 1,
        "flags": APPROPRIATENESS,
        "validUntil": evm.timestamp() + YEAR,
        "subjectId": Web3.keccak(text=f"subject:{account}"),
        "evidenceRef": Web3.keccak(text=f"evidence:{account}"),
    }
    values.update(overrides)
    return tuple(values.values())


def set_record(evm: Anvil, world: World, account: str, **overrides: Any) -> None:
    send(world.registry.functions.setRecord(account, record_input(evm, account, **overrides)), world.attester)


def attest(
    evm: Anvil, world: World, recipient: str, *, schema: str = SCHEMA, expires: int = 0, by: str | None = None
) -> bytes:
    request = (bytes.fromhex(schema[2:]), (recipient, expires, True, b"\x00" * 32, b"\x01", 0))
    receipt = send(world.eas.functions.attest(request), by or world.eas_attester)
    (event,) = world.eas.events.Attested().process_receipt(receipt)
    uid: bytes = event["args"]["uid"]
    return uid


def chain_settings(evm: Anvil, world: World, **overrides: Any) -> ChainSettings:
    """Registry only, multicall stand-in deployed, no cache; overrides add sources or change knobs."""
    values: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "rpc_urls": [evm.url],
        "registry": world.registry.address,
        "multicall": world.multicall.address,
        "cache_seconds": 0,
        "rpc_timeout_seconds": 5,
    }
    values.update(overrides)
    return ChainSettings(**values)


def closed_port_url() -> str:
    """An http URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class CountingRpc:
    """A real wrapper around the real RPC client that counts calls per method (every call reaches anvil)."""

    def __init__(self, inner: Web3Rpc) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()

    async def chain_id(self) -> int:
        self.counts["chain_id"] += 1
        return await self.inner.chain_id()

    async def block(self, confirmations: int = 0) -> BlockRef:
        self.counts["block"] += 1
        return await self.inner.block(confirmations)

    async def block_at(self, number: int) -> BlockRef | None:
        self.counts["block_at"] += 1
        return await self.inner.block_at(number)

    async def call(self, to: str, data: bytes, block: int, gas: int) -> bytes:
        self.counts["call"] += 1
        return await self.inner.call(to, data, block, gas)

    async def get_logs(self, query: LogFilter) -> list[Log]:
        self.counts["get_logs"] += 1
        return await self.inner.get_logs(query)

    async def code_at(self, address: str, block: int) -> bytes:
        self.counts["code_at"] += 1
        return await self.inner.code_at(address, block)


class HangingServer:
    """A TCP server on a loopback port that accepts connections, reads, and never answers."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self.url = ""

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._release.wait()
        writer.close()

    async def __aenter__(self) -> HangingServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
