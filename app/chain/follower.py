"""Log follower: turns registry, sanctions, identity-registry and EAS events into "this account changed".

Polled every ``poll_seconds`` up to head minus ``confirmations``, it reads (contracts/README.md "Events")
``RecordSet`` / ``RecordRevoked`` / ``RecordFrozen`` / ``RecordUnfrozen`` (account = first indexed topic), the
Chainalysis oracle's ``SanctionedAddressesAdded`` / ``SanctionedAddressesRemoved(address[])``, ERC-3643
``IdentityRegistered`` / ``IdentityRemoved`` / ``CountryUpdated``, and EAS ``Attested`` / ``Revoked`` of the
configured schema. For each affected account it invalidates the reader's cache and awaits
``on_change(change)`` with a :class:`ChainChange` naming the account, the event and the log it came from
(transaction, log index, block hash, contract, topics, data) so the server can audit it and revoke sessions.

Reorg safety: the cursor is the last processed block's number AND hash; the cursors of earlier polls are
kept. Each poll first checks that the cursor is still canonical; if not, it steps back to the newest
remembered block that is, and re-reads from there. A range counts as read only when its last block kept its
hash while the logs were fetched and its first block's parent is the cursor. Events are remembered by
(transaction, topics, data): a re-read or a re-mined transaction is never reported twice, and an event whose
block was dropped and that does not come back is reported once as ``Reorged`` (the account's state went
back), after its cache entry is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from app.chain.rpc import RpcClient
from app.chain.sources import EAS_ATTESTED, EAS_REVOKED, event_topic
from app.chain.types import BlockRef, ChainUnavailable, Log, LogFilter
from app.metrics import Metrics
from app.settings import ChainSettings

log = logging.getLogger("portcullis.chain")


_RECORD = "(uint16,uint8,uint8,uint8,uint32,uint64,uint64,address,uint64,bytes32,bytes32,bytes32)"
# topic0 -> event name, per kind of contract. Account-per-topic events carry the account as topic 1.
REGISTRY_EVENTS = {
    event_topic(f"RecordSet(address,bytes32,address,{_RECORD},uint256)"): "RecordSet",
    event_topic("RecordRevoked(address,address,bytes32,uint256)"): "RecordRevoked",
    event_topic("RecordFrozen(address,address,bytes32,uint256)"): "RecordFrozen",
    event_topic("RecordUnfrozen(address,address,uint256)"): "RecordUnfrozen",
}
SANCTIONS_EVENTS = {
    event_topic("SanctionedAddressesAdded(address[])"): "SanctionedAddressesAdded",
    event_topic("SanctionedAddressesRemoved(address[])"): "SanctionedAddressesRemoved",
}
IDENTITY_EVENTS = {
    event_topic("IdentityRegistered(address,address)"): "IdentityRegistered",
    event_topic("IdentityRemoved(address,address)"): "IdentityRemoved",
    event_topic("CountryUpdated(address,uint16)"): "CountryUpdated",
}
EAS_EVENTS = {EAS_ATTESTED: "Attested", EAS_REVOKED: "Revoked"}
REORGED = "Reorged"


class CacheInvalidator(Protocol):
    """What the follower needs of the reader."""

    def invalidate(self, address: str) -> None: ...

    def invalidate_all(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ChainChange:
    """One reported change: ``account`` was touched by ``event`` in block ``block``, by the log ``log``.

    For ``Reorged``, ``block`` is the block up to which the chain was re-read without the event and ``log``
    is the dropped log (its block number and hash are those of the block that no longer exists)."""

    chain_id: int
    account: str
    event: str
    block: int
    log: Log

    @property
    def transaction_hash(self) -> str:
        return self.log.transaction_hash


OnChange = Callable[[ChainChange], Awaitable[None]]


@dataclass(slots=True)
class _Seen:
    block: int
    accounts: tuple[str, ...]
    log: Log
    pending_orphan: bool = False  # its block was dropped by a reorg; not seen again yet


_EventKey = tuple[str, tuple[str, ...], bytes]


class LogFollower:
    """Follows one chain's compliance events; ``run`` polls until stopped, ``poll_once`` does one round."""

    def __init__(
        self,
        settings: ChainSettings,
        rpc: RpcClient,
        cache: CacheInvalidator,
        on_change: OnChange,
        *,
        start_block: int | None = None,
        max_range: int = 2_000,
        history: int = 128,
        metrics: Metrics | None = None,
    ) -> None:
        """``start_block``: the first block to read (default: only blocks after the first poll's safe head).
        ``max_range``: most blocks per eth_getLogs. ``history``: how many past cursors are kept for reorgs."""
        self.settings = settings
        self._rpc = rpc
        self._cache = cache
        self._on_change = on_change
        self._start_block = start_block
        self._max_range = max_range
        self._cursors: deque[BlockRef] = deque(maxlen=history)
        self._seen: dict[_EventKey, _Seen] = {}
        self._queries = self._build_queries()
        self._behind = False  # the last poll stopped at max_range short of the safe head
        self._safe_head: int | None = None  # the confirmed head the last poll saw
        self._lag = metrics.follower_lag.labels(str(settings.chain_id)) if metrics is not None else None

    @property
    def cursor(self) -> BlockRef | None:
        """The last processed block (number and hash), or None before the first poll."""
        return self._cursors[-1] if self._cursors else None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_seconds`` until ``stop`` is set; an unavailable chain is logged and retried."""
        while not stop.is_set():
            try:
                await self.poll_once()
                self._report_lag()
            except ChainUnavailable as exc:
                log.warning("chain %s follower: %s", self.settings.chain_id, exc)
            except Exception:
                # Keep following: a stopped follower would silently stop revoking sessions.
                log.exception("chain %s follower: poll failed", self.settings.chain_id)
            if self._behind:
                continue  # catching up: read the next range at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.poll_seconds)

    async def poll_once(self) -> list[ChainChange]:
        """Read the next confirmed range and report its changes (after stepping back over a reorg)."""
        safe = await self._rpc.block(self.settings.confirmations)
        self._safe_head = safe.number
        self._behind = False
        if not self._cursors:
            await self._start(safe)
            return []
        await self._rewind_if_reorged()
        cursor = self._cursors[-1]
        if safe.number <= cursor.number:
            return []
        first, last = cursor.number + 1, min(safe.number, cursor.number + self._max_range)
        top = await self._rpc.block_at(last)
        logs: list[Log] = []
        for query in self._queries:
            logs.extend(await self._rpc.get_logs(LogFilter(query.addresses, query.topics, first, last)))
        bottom = top if first == last else await self._rpc.block_at(first)
        again = await self._rpc.block_at(last)
        if (
            top is None
            or bottom is None
            or again is None
            or again.hash != top.hash
            or (cursor.hash and bottom.parent_hash != cursor.hash)
        ):
            # The chain moved while we read: keep the cursor, the next poll finds out how.
            return []
        logs.sort(key=lambda entry: (entry.block_number, entry.log_index))
        changes: list[ChainChange] = []
        for entry in logs:
            changes.extend(await self._process(entry))
        self._cursors.append(top)
        self._behind = last < safe.number
        changes.extend(await self._settle_orphans(last))
        self._prune()
        return changes

    def _report_lag(self) -> None:
        """The follower-lag gauge: confirmed blocks not yet read (0 when caught up)."""
        cursor = self.cursor
        if self._lag is not None and cursor is not None and self._safe_head is not None:
            self._lag.set(max(0, self._safe_head - cursor.number))

    # ------------------------------------------------------------------ cursor and reorgs

    async def _start(self, safe: BlockRef) -> None:
        if self._start_block is None:
            self._cursors.append(safe)
        elif self._start_block <= 0:
            self._cursors.append(BlockRef(-1, "", "", 0))  # before genesis: nothing to verify
        else:
            start = await self._rpc.block_at(self._start_block - 1)
            if start is None:
                raise ChainUnavailable(
                    f"chain {self.settings.chain_id}: start block {self._start_block} is beyond the head"
                )
            self._cursors.append(start)

    async def _rewind_if_reorged(self) -> None:
        """Step back over cursors that are no longer canonical; mark the events above the new cursor."""
        dropped: BlockRef | None = None
        while self._cursors:
            cursor = self._cursors[-1]
            if not cursor.hash:  # before genesis, or an unverified restart point
                break
            current = await self._rpc.block_at(cursor.number)
            if current is not None and current.hash == cursor.hash:
                break
            dropped = self._cursors.pop()
        if dropped is None:
            return
        if not self._cursors:
            # Deeper than every remembered cursor: restart below the oldest one, trust no cached answer.
            self._cursors.append(BlockRef(dropped.number - 1, "", "", 0))
            self._cache.invalidate_all()
        base = self._cursors[-1].number
        log.warning("chain %s follower: reorg below block %s, re-reading", self.settings.chain_id, base + 1)
        for seen in self._seen.values():
            if seen.block > base and not seen.pending_orphan:
                seen.pending_orphan = True
                for account in seen.accounts:
                    self._cache.invalidate(account)

    async def _settle_orphans(self, read_up_to: int) -> list[ChainChange]:
        """Events dropped by a reorg whose old block has been re-read without them: report them once."""
        changes: list[ChainChange] = []
        for key, seen in list(self._seen.items()):
            if seen.pending_orphan and seen.block <= read_up_to:
                del self._seen[key]
                for account in seen.accounts:
                    self._cache.invalidate(account)
                    changes.append(await self._report(account, REORGED, read_up_to, seen.log))
        return changes

    def _prune(self) -> None:
        """Forget events older than every remembered cursor: no reorg we can handle reaches them."""
        if len(self._cursors) < (self._cursors.maxlen or 0):
            return
        floor = self._cursors[0].number
        for key in [k for k, seen in self._seen.items() if seen.block < floor and not seen.pending_orphan]:
            del self._seen[key]

    # ------------------------------------------------------------------ events

    def _build_queries(self) -> list[LogFilter]:
        s = self.settings
        addresses: list[str] = []
        topics: list[str] = []
        for address, events in (
            (s.registry, REGISTRY_EVENTS),
            (s.sanctions_oracle, SANCTIONS_EVENTS),
            (s.identity_registry, IDENTITY_EVENTS),
        ):
            if address is not None:
                addresses.append(to_checksum_address(address))
                topics.extend(events)
        queries: list[LogFilter] = []
        if addresses:
            queries.append(LogFilter(tuple(addresses), (tuple(topics),), 0, 0))
        if s.eas is not None:
            eas_topics = (tuple(EAS_EVENTS), None, None, s.eas.schema_uid.lower())
            queries.append(LogFilter((to_checksum_address(s.eas.address),), eas_topics, 0, 0))
        return queries

    def _classify(self, entry: Log) -> tuple[str, tuple[str, ...]] | None:
        """The event name and the accounts it touches, or None for a log that is not ours."""
        s = self.settings
        topic0 = entry.topics[0] if entry.topics else ""
        eas_schema = s.eas.schema_uid.lower() if s.eas is not None else None
        sources = (
            (s.registry, REGISTRY_EVENTS),
            (s.identity_registry, IDENTITY_EVENTS),
            (s.eas.address if s.eas is not None else None, EAS_EVENTS),
        )
        for address, events in sources:
            if address is not None and entry.address.lower() == address.lower() and topic0 in events:
                if len(entry.topics) < 2:
                    return None
                if events is EAS_EVENTS and entry.topics[3:] != (eas_schema,):
                    return None
                return events[topic0], (to_checksum_address("0x" + entry.topics[1][-40:]),)
        oracle = s.sanctions_oracle
        if oracle is not None and entry.address.lower() == oracle.lower() and topic0 in SANCTIONS_EVENTS:
            try:
                (addresses,) = decode(["address[]"], entry.data)
            except (DecodingError, ValueError):
                return None
            return SANCTIONS_EVENTS[topic0], tuple(to_checksum_address(a) for a in addresses)
        return None

    async def _process(self, entry: Log) -> list[ChainChange]:
        classified = self._classify(entry)
        if classified is None:
            return []
        event, accounts = classified
        key: _EventKey = (entry.transaction_hash, entry.topics, entry.data)
        for account in accounts:
            self._cache.invalidate(account)
        seen = self._seen.get(key)
        if seen is not None:
            # Re-read after stepping back, or the same transaction mined again after a reorg: reported.
            seen.block = entry.block_number
            seen.log = entry
            seen.pending_orphan = False
            return []
        self._seen[key] = _Seen(entry.block_number, accounts, entry)
        return [await self._report(a, event, entry.block_number, entry) for a in accounts]

    async def _report(self, account: str, event: str, block: int, entry: Log) -> ChainChange:
        change = ChainChange(self.settings.chain_id, account, event, block, entry)
        try:
            await self._on_change(change)
        except Exception:
            # A failing callback must not stop the follower (nor make it re-report): log it loudly.
            log.exception(
                "chain %s follower: on_change(%s, %s) failed", self.settings.chain_id, account, event
            )
        return change
