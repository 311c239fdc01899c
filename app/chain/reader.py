"""The compliance reader: "may this wallet trade?", answered from every configured source at one block.

One decision reads one block (head minus ``confirmations``), fetches the logs its sources need (EAS only),
and runs all the sources' calls as ONE Multicall3 ``aggregate3((address,bool,bytes)[])`` ``eth_call`` with
``allowFailure = true`` when code exists at ``ChainSettings.multicall`` (plain ``eth_call`` s pinned to the
same block otherwise). The answer names the block (number and hash), every source's reading, and why not.

Fail closed: a required source that cannot be read, a dead RPC or a wrong chain id raise
:class:`ChainUnavailable` (the server answers 503); optional sources that cannot be read are listed as
``degraded`` and do not block. Decisions are cached per address for ``cache_seconds`` (never past the record's
expiry); the log follower invalidates them when the chain changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address

from app.chain.rpc import RpcClient
from app.chain.sources import RegistrySource, Source, build_sources, selector
from app.chain.types import (
    BlockRef,
    Call,
    CallResult,
    CallReverted,
    ChainUnavailable,
    ComplianceDecision,
    Log,
    RegistryRecord,
    SourceReading,
)
from app.clock import Clock
from app.metrics import Metrics
from app.settings import ChainSettings

log = logging.getLogger("portcullis.chain")

AGGREGATE3 = selector("aggregate3((address,bool,bytes)[])")  # Multicall3, 0x82ad56cb


@dataclass(frozen=True, slots=True)
class _Cached:
    decision: ComplianceDecision
    expires: datetime


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one source needs read: its calls, or why it could not even plan them."""

    calls: tuple[Call, ...]
    failure: str | None = None


def encode_aggregate3(calls: Sequence[Call]) -> bytes:
    """Calldata of ``aggregate3`` with ``allowFailure = true`` for every call."""
    return AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(c.to, True, c.data) for c in calls]])


def decode_aggregate3(data: bytes, expected: int) -> list[CallResult]:
    """The ``(bool success, bytes returnData)[]`` answer; DecodingError when it does not hold ``expected``."""
    (results,) = decode(["(bool,bytes)[]"], data)
    if len(results) != expected:
        raise DecodingError(f"aggregate3 answered {len(results)} results for {expected} calls")
    return [CallResult(bool(success), bytes(answer)) for success, answer in results]


@dataclass(frozen=True, slots=True)
class _Meters:
    """This chain's metric children (app.metrics), labelled once."""

    cached: Any
    read: Any
    error: Any
    duration: Any


class ComplianceReader:
    """Compliance decisions for one chain: built from its ChainSettings, an RPC client and a clock."""

    def __init__(
        self,
        settings: ChainSettings,
        rpc: RpcClient,
        clock: Clock,
        *,
        sources: Sequence[Source] | None = None,
        max_cached: int = 10_000,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.sources: tuple[Source, ...] = tuple(sources) if sources is not None else build_sources(settings)
        self._rpc = rpc
        self._clock = clock
        self._max_cached = max_cached
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._multicall_deployed: bool | None = None  # looked up once per reader
        self._meters: _Meters | None = None
        if metrics is not None:
            chain = str(settings.chain_id)
            self._meters = _Meters(
                cached=metrics.chain_reads.labels(chain, "cached"),
                read=metrics.chain_reads.labels(chain, "read"),
                error=metrics.chain_reads.labels(chain, "error"),
                duration=metrics.chain_read_duration.labels(chain),
            )

    @property
    def chain_id(self) -> int:
        return self.settings.chain_id

    async def decide(self, address: str) -> ComplianceDecision:
        """The decision for ``address`` (any case; ValueError when it is not an address)."""
        account = to_checksum_address(address)
        now = self._clock.now()
        cached = self._cache.get(account.lower())
        meters = self._meters
        if cached is not None and now < cached.expires:
            if meters is not None:
                meters.cached.inc()
            return cached.decision
        start = time.perf_counter()
        try:
            decision, at = await self._decide(account)
        except BaseException:
            if meters is not None:
                meters.error.inc()
            raise
        if meters is not None:
            meters.read.inc()
            meters.duration.observe(time.perf_counter() - start)
        self._remember(decision, at, now)
        return decision

    def invalidate(self, address: str) -> None:
        """Forget the cached decision of ``address`` (its on-chain state changed)."""
        self._cache.pop(address.lower(), None)

    def invalidate_all(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ one decision

    async def _decide(self, account: str) -> tuple[ComplianceDecision, BlockRef]:
        at = await self._rpc.block(self.settings.confirmations)
        plans = await self._plan(account, at.number)
        flat = [call for plan in plans for call in plan.calls]
        results = await self._execute(flat, at.number)

        readings: list[SourceReading] = []
        record: RegistryRecord | None = None
        offset = 0
        for source, plan in zip(self.sources, plans, strict=True):
            answers = results[offset : offset + len(plan.calls)]
            offset += len(plan.calls)
            if plan.failure is not None:
                readings.append(SourceReading(source.name, source.required, False, False, plan.failure))
                continue
            readings.append(source.interpret(account, answers, at))
            if isinstance(source, RegistrySource):
                record = source.record(answers)

        for reading in readings:
            if reading.required and not reading.ok:
                raise ChainUnavailable(
                    f"chain {self.chain_id}: required source {reading.source} could not be read at block "
                    f"{at.number}: {reading.reason}"
                )
        required = [r for r in readings if r.required]
        decision = ComplianceDecision(
            chain_id=self.chain_id,
            address=account,
            block_number=at.number,
            block_hash=at.hash,
            eligible=all(r.passed for r in required),
            reasons=tuple(r.reason or "refused" for r in required if not r.passed),
            degraded=tuple(r.source for r in readings if not r.required and not r.ok),
            record=record,
            readings=tuple(readings),
        )
        if decision.degraded:
            log.warning(
                "chain %s: optional sources unreadable: %s", self.chain_id, ", ".join(decision.degraded)
            )
        return decision, at

    async def _plan(self, account: str, block: int) -> list[_Plan]:
        """Each source's calls, after fetching the logs it asked for (a failed log read fails only it)."""

        async def plan(source: Source) -> _Plan:
            queries = source.log_queries(account, block)
            logs: list[Log] = []
            try:
                for query in queries:
                    logs.extend(await self._rpc.get_logs(query))
            except ChainUnavailable as exc:
                return _Plan((), failure=f"rpc_error: {exc}")
            return _Plan(tuple(source.calls(account, logs)))

        return list(await asyncio.gather(*(plan(source) for source in self.sources)))

    async def _execute(self, calls: Sequence[Call], block: int) -> list[CallResult]:
        if not calls:
            return []
        multicall = self.settings.multicall
        if multicall is not None and await self._has_multicall(multicall, block):
            try:
                answer = await self._rpc.call(multicall, encode_aggregate3(calls), block, self._gas)
                return decode_aggregate3(answer, len(calls))
            except (CallReverted, DecodingError, ValueError, OverflowError) as exc:
                # The batch as a whole failed (e.g. out of gas): ask each call on its own instead.
                log.warning("chain %s: aggregate3 failed (%s); calling one by one", self.chain_id, exc)
        outcomes = await asyncio.gather(*(self._call(c, block) for c in calls), return_exceptions=True)
        results: list[CallResult] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    async def _call(self, call: Call, block: int) -> CallResult:
        try:
            return CallResult(True, await self._rpc.call(call.to, call.data, block, self._gas))
        except CallReverted as exc:
            return CallResult(False, exc.data)

    async def _has_multicall(self, address: str, block: int) -> bool:
        if self._multicall_deployed is None:
            self._multicall_deployed = bool(await self._rpc.code_at(address, block))
        return self._multicall_deployed

    @property
    def _gas(self) -> int:
        return self.settings.call_gas_cap

    # ------------------------------------------------------------------ cache

    def _remember(self, decision: ComplianceDecision, at: BlockRef, now: datetime) -> None:
        ttl = self.settings.cache_seconds
        record = decision.record
        if decision.eligible and record is not None and record.exists:
            # An eligible answer must not outlive the record: count the remaining validity in chain time.
            ttl = min(ttl, float(record.valid_until - at.timestamp))
        if ttl <= 0:
            return
        key = decision.address.lower()
        self._cache.pop(key, None)
        self._cache[key] = _Cached(decision, now + timedelta(seconds=ttl))
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
