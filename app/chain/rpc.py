"""Ethereum JSON-RPC (execution API: eth_chainId, eth_getBlockByNumber, eth_call, eth_getLogs, eth_getCode,
eth_getTransactionByHash): the few reads the chain reader and the log follower need, behind one small
protocol.

``Web3Rpc`` is the real client over web3.py 8 ``AsyncWeb3(AsyncHTTPProvider)``: it tries the configured URLs
in order (starting with the last one that answered), gives every attempt ``rpc_timeout_seconds``, and checks
each URL's chain id before its first use (EIP-155 ids; a mismatch is never served). When no URL answers it
raises :class:`ChainUnavailable` saying what each URL did, so the caller fails closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import aiohttp
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.async_base import AsyncBaseProvider
from web3.types import BlockData, BlockIdentifier, FilterParams, LogReceipt, TxParams

from app.chain.types import BlockRef, CallReverted, ChainUnavailable, Log, LogFilter
from app.settings import ChainSettings

T = TypeVar("T")

# Words in an eth_call error that mean "the call itself failed" (revert, out of gas, bad opcode), as opposed
# to "this node cannot serve the request" (unknown block, rate limit, ...), which is worth another URL.
_EXECUTION_ERRORS = ("revert", "out of gas", "gas required", "invalid opcode", "stack", "execution")


class RpcClient(Protocol):
    """The chain reads of one chain. Transport failures raise ChainUnavailable; reverts raise CallReverted."""

    async def chain_id(self) -> int:
        """The chain id the RPC reports (it equals the configured one, or ChainUnavailable is raised)."""
        ...

    async def block(self, confirmations: int = 0) -> BlockRef:
        """The block ``confirmations`` below the head (the head itself for 0; block 0 at the bottom)."""
        ...

    async def block_at(self, number: int) -> BlockRef | None:
        """The canonical block ``number``, or None when the chain is not that long (any more)."""
        ...

    async def call(self, to: str | None, data: bytes, block: BlockIdentifier, gas: int) -> bytes:
        """``eth_call`` pinned to ``block`` with at most ``gas``; CallReverted when it reverts.

        ``to=None`` runs ``data`` as creation code (deployless); ``block`` may be a tag such as "latest".
        """
        ...

    async def get_logs(self, query: LogFilter) -> list[Log]:
        """``eth_getLogs`` for ``query``, in chain order."""
        ...

    async def code_at(self, address: str, block: int) -> bytes:
        """The runtime code at ``address`` in block ``block`` (empty for an account without code)."""
        ...


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _block_ref(block: BlockData) -> BlockRef:
    return BlockRef(
        number=int(block["number"]),
        hash=_hex(block["hash"]),
        parent_hash=_hex(block["parentHash"]),
        timestamp=int(block["timestamp"]),
    )


def _log(entry: LogReceipt) -> Log:
    return Log(
        address=to_checksum_address(entry["address"]),
        topics=tuple(_hex(t) for t in entry["topics"]),
        data=bytes(entry["data"]),
        block_number=int(entry["blockNumber"]),
        block_hash=_hex(entry["blockHash"]),
        transaction_hash=_hex(entry["transactionHash"]),
        log_index=int(entry["logIndex"]),
    )


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


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text[:200]}"


class Web3Rpc:
    """RpcClient over web3.py: failover across ``urls``, a timeout per attempt, chain id checked first."""

    def __init__(
        self,
        chain_id: int,
        urls: Sequence[str],
        *,
        timeout: float,
        providers: Mapping[str, AsyncBaseProvider] | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        self.expected_chain_id = chain_id
        self.urls = tuple(urls)
        self.timeout = timeout
        # URL -> an in-process provider used instead of HTTP (the development chain).
        self._providers = dict(providers or {})
        self._clients: dict[int, AsyncWeb3[Any]] = {}
        self._verified: set[int] = set()
        self._current = 0  # the URL that answered last; tried first

    @classmethod
    def from_settings(
        cls, settings: ChainSettings, providers: Mapping[str, AsyncBaseProvider] | None = None
    ) -> Web3Rpc:
        return cls(
            settings.chain_id, settings.rpc_urls, timeout=settings.rpc_timeout_seconds, providers=providers
        )

    @property
    def current_url(self) -> str:
        return self.urls[self._current]

    async def aclose(self) -> None:
        """Close the HTTP sessions (call once, when the app stops)."""
        clients, self._clients = self._clients, {}
        for w3 in clients.values():
            if isinstance(w3.provider, AsyncHTTPProvider):
                await w3.provider.disconnect()

    # ------------------------------------------------------------------ RpcClient

    async def chain_id(self) -> int:
        async def op(w3: AsyncWeb3[Any]) -> int:
            return int(await w3.eth.chain_id)

        return await self._request("eth_chainId", op)

    async def block(self, confirmations: int = 0) -> BlockRef:
        async def op(w3: AsyncWeb3[Any]) -> BlockRef:
            if confirmations == 0:
                return _block_ref(await w3.eth.get_block("latest"))
            head = int(await w3.eth.block_number)
            return _block_ref(await w3.eth.get_block(max(0, head - confirmations)))

        return await self._request("the head block", op)

    async def block_at(self, number: int) -> BlockRef | None:
        async def op(w3: AsyncWeb3[Any]) -> BlockRef | None:
            try:
                return _block_ref(await w3.eth.get_block(number))
            except BlockNotFound:
                return None

        return await self._request(f"block {number}", op)

    async def call(self, to: str | None, data: bytes, block: BlockIdentifier, gas: int) -> bytes:
        """``eth_call``; ``to=None`` runs ``data`` as creation code (a deployless call, e.g. ERC-6492)."""
        tx: TxParams = {"data": HexStr("0x" + data.hex()), "gas": gas}
        if to is not None:
            tx["to"] = to_checksum_address(to)

        async def op(w3: AsyncWeb3[Any]) -> bytes:
            try:
                # CCIP-read (EIP-3668) is off: a read must never make the server fetch URLs a contract names.
                return bytes(await w3.eth.call(tx, block, ccip_read_enabled=False))
            except ContractLogicError as exc:
                raise CallReverted(str(exc)[:200], revert_data(exc)) from None
            except Web3RPCError as exc:
                if any(word in str(exc).lower() for word in _EXECUTION_ERRORS):
                    raise CallReverted(str(exc)[:200]) from None
                raise

        return await self._request(f"eth_call to {to or 'nothing (deployless)'}", op)

    async def get_logs(self, query: LogFilter) -> list[Log]:
        topics: list[Any] = [list(t) if isinstance(t, tuple) else t for t in query.topics]
        params: FilterParams = {
            "address": [to_checksum_address(a) for a in query.addresses],
            "topics": topics,
            "fromBlock": query.from_block,
            "toBlock": query.to_block,
        }

        async def op(w3: AsyncWeb3[Any]) -> list[Log]:
            entries = await w3.eth.get_logs(params)
            logs = [_log(e) for e in entries if not e.get("removed", False)]
            return sorted(logs, key=lambda log: (log.block_number, log.log_index))

        return await self._request(f"logs {query.from_block}..{query.to_block}", op)

    async def code_at(self, address: str, block: int) -> bytes:
        async def op(w3: AsyncWeb3[Any]) -> bytes:
            return bytes(await w3.eth.get_code(to_checksum_address(address), block))

        return await self._request(f"the code at {address}", op)

    async def transaction_sender(self, transaction_hash: str) -> str | None:
        """The ``from`` of a mined transaction (``eth_getTransactionByHash``), None when it is unknown."""

        async def op(w3: AsyncWeb3[Any]) -> str | None:
            try:
                tx = await w3.eth.get_transaction(HexStr(transaction_hash))
            except TransactionNotFound:
                return None
            sender = tx.get("from")
            return None if sender is None else to_checksum_address(sender)

        return await self._request(f"transaction {transaction_hash}", op)

    # ------------------------------------------------------------------ failover

    def _client(self, index: int) -> AsyncWeb3[Any]:
        w3 = self._clients.get(index)
        if w3 is None and self.urls[index] in self._providers:
            w3 = AsyncWeb3(self._providers[self.urls[index]], middleware=[])
            self._clients[index] = w3
        if w3 is None:
            provider = AsyncHTTPProvider(
                self.urls[index],
                request_kwargs={"timeout": aiohttp.ClientTimeout(total=self.timeout)},
                # No retries inside web3: failing over to the next URL is this class's job, and retries with
                # back-off would blow the per-call timeout.
                exception_retry_configuration=None,
            )
            w3 = AsyncWeb3(provider, middleware=[])
            self._clients[index] = w3
        return w3

    async def _check_chain(self, index: int, w3: AsyncWeb3[Any]) -> None:
        if index in self._verified:
            return
        reported = int(await w3.eth.chain_id)
        if reported != self.expected_chain_id:
            raise ChainUnavailable(
                f"RPC at {self.urls[index]} reports chain id {reported}, configured {self.expected_chain_id}"
            )
        self._verified.add(index)

    async def _request(self, what: str, op: Callable[[AsyncWeb3[Any]], Awaitable[T]]) -> T:
        failures: list[str] = []
        count = len(self.urls)
        for step in range(count):
            index = (self._current + step) % count
            url = self.urls[index]
            w3 = self._client(index)
            try:
                async with asyncio.timeout(self.timeout):
                    await self._check_chain(index, w3)
                    result = await op(w3)
            except CallReverted:
                self._current = index  # the node answered: the call itself failed
                raise
            except ChainUnavailable as exc:
                failures.append(str(exc))
            except TimeoutError:
                failures.append(f"RPC at {url}: no answer within {self.timeout:g}s")
            except (OSError, aiohttp.ClientError, Web3Exception, ValueError, KeyError) as exc:
                failures.append(f"RPC at {url}: {_describe(exc)}")
            else:
                self._current = index
                return result
        raise ChainUnavailable(f"chain {self.expected_chain_id}: cannot read {what}: " + "; ".join(failures))
