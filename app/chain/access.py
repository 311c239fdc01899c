"""Per-chain access for the protocol cores: configuration, RPC client, compliance reader and log follower
of every configured chain.

Built once per app from Settings.chains (plus, in development, the embedded chain, whose in-process
provider stands in for HTTP); the cores ask it by chain id and get None for a chain Portcullis does not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from web3.providers.async_base import AsyncBaseProvider

from app.chain.follower import LogFollower, OnChange
from app.chain.reader import ComplianceReader
from app.chain.rpc import Web3Rpc
from app.chain.sources import build_sources
from app.clock import Clock
from app.metrics import Metrics
from app.settings import ChainSettings


@dataclass(slots=True)
class Chain:
    config: ChainSettings
    rpc: Web3Rpc
    reader: ComplianceReader | None  # None: no compliance source configured on this chain


class ChainAccess:
    def __init__(
        self,
        chains: list[ChainSettings],
        clock: Clock,
        providers: Mapping[str, AsyncBaseProvider] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._chains: dict[int, Chain] = {}
        for config in chains:
            rpc = Web3Rpc.from_settings(config, providers)
            sources = build_sources(config)
            reader = (
                ComplianceReader(config, rpc, clock, sources=sources, metrics=metrics) if sources else None
            )
            self._chains[config.chain_id] = Chain(config, rpc, reader)

    def get(self, chain_id: int) -> Chain | None:
        return self._chains.get(chain_id)

    def sources(self) -> list[Chain]:
        """The chains with compliance sources: sign-ins need their RPC (/ready probes each)."""
        return [chain for chain in self._chains.values() if chain.reader is not None]

    def followers(self, on_change: OnChange) -> list[LogFollower]:
        """One log follower per chain with compliance sources, reporting to ``on_change``."""
        return [
            LogFollower(chain.config, chain.rpc, chain.reader, on_change, metrics=self._metrics)
            for chain in self._chains.values()
            if chain.reader is not None
        ]

    async def close(self) -> None:
        for chain in self._chains.values():
            await chain.rpc.aclose()
