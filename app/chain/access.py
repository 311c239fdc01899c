"""Per-chain access for the protocol cores: configuration and RPC clients of every configured chain.

Built once per app from Settings.chains (plus, in development, the embedded chain); the cores ask it for
what they need by chain id and get None for a chain Portcullis does not read.
"""

from __future__ import annotations

from web3 import AsyncWeb3
from web3.providers import AsyncHTTPProvider
from web3.providers.async_base import AsyncBaseProvider

from app.chain.wallets import Web3Caller
from app.settings import ChainSettings


class ChainAccess:
    def __init__(
        self, chains: list[ChainSettings], providers: dict[int, AsyncBaseProvider] | None = None
    ) -> None:
        self._config = {c.chain_id: c for c in chains}
        providers = providers or {}
        self._w3 = {
            c.chain_id: AsyncWeb3(
                providers.get(c.chain_id)
                or AsyncHTTPProvider(c.rpc_urls[0], request_kwargs={"timeout": c.rpc_timeout_seconds})
            )
            for c in chains
        }

    def config(self, chain_id: int) -> ChainSettings | None:
        return self._config.get(chain_id)

    def signature_caller(self, chain_id: int) -> Web3Caller | None:
        w3 = self._w3.get(chain_id)
        return Web3Caller(w3) if w3 is not None else None

    async def close(self) -> None:
        for w3 in self._w3.values():
            provider = w3.provider
            if isinstance(provider, AsyncHTTPProvider):
                await provider.disconnect()
