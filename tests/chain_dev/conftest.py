"""Fixtures for the development chain: a fresh DevChain, and web3.py 8 on it in process or over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract

from app.chain import artifacts
from app.chain.devchain import RPC_PATH, DevChain, DevChainProvider, dev_chain_routes


@pytest.fixture
def chain() -> DevChain:
    return DevChain()


async def rpc(chain: DevChain, method: str, *params: Any) -> dict[str, Any]:
    """One JSON-RPC request through DevChain.handle; the whole response object."""
    response = await chain.handle({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    assert isinstance(response, dict)
    return response


@contextlib.asynccontextmanager
async def serving(chain: DevChain) -> AsyncIterator[str]:
    """uvicorn on a free loopback port serving only the dev chain routes; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(Starlette(routes=dev_chain_routes(chain)), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(params=["in-process", "http"])
async def w3(request: pytest.FixtureRequest, chain: DevChain) -> AsyncIterator[AsyncWeb3[Any]]:
    """AsyncWeb3 over DevChainProvider, or over AsyncHTTPProvider to a real server on loopback."""
    if request.param == "in-process":
        yield AsyncWeb3(DevChainProvider(chain))
        return
    async with serving(chain) as base_url:
        provider = AsyncHTTPProvider(base_url + RPC_PATH)
        try:
            yield AsyncWeb3(provider)
        finally:
            await provider.disconnect()


@pytest.fixture
def registry(w3: AsyncWeb3[Any], chain: DevChain) -> AsyncContract:
    return w3.eth.contract(address=chain.registry_address, abi=artifacts.load("ComplianceRegistry")["abi"])
