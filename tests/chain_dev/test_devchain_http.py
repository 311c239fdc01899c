"""The development-only HTTP routes: POST /dev/chain/rpc (JSON-RPC over HTTP) and GET /dev/chain/info."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from app.chain.devchain import (
    COMPLIANCE,
    DEV_ACCOUNTS,
    INFO_PATH,
    MAX_RPC_BODY,
    RPC_PATH,
    DevChain,
    dev_chain_routes,
)


@pytest.fixture
async def client(chain: DevChain) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=dev_chain_routes(chain))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dev") as client:
        yield client


async def test_info(client: httpx.AsyncClient, chain: DevChain) -> None:
    response = await client.get(INFO_PATH)
    assert response.status_code == 200
    info = response.json()
    assert info["chain_id"] == 31337
    assert info["registry"] == chain.registry_address == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert info["rpc_url_path"] == RPC_PATH == "/dev/chain/rpc"
    assert info["compliance_account"] == COMPLIANCE.address
    assert info["compliance_key_hint"].startswith(COMPLIANCE.address)
    assert [a["address"] for a in info["demo_accounts"]] == [a.address for a in DEV_ACCOUNTS[2:5]]
    assert "private_key" not in response.text


async def test_single_and_batch(client: httpx.AsyncClient) -> None:
    single = await client.post(
        RPC_PATH, json={"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}
    )
    assert single.status_code == 200
    assert single.json() == {"jsonrpc": "2.0", "id": 7, "result": "0x7a69"}
    batch = await client.post(
        RPC_PATH,
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "net_version", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_nope", "params": []},
        ],
    )
    assert batch.status_code == 200
    assert batch.json()[0]["result"] == "31337"
    assert batch.json()[1]["error"]["code"] == -32601


async def test_parse_error_is_http_200(client: httpx.AsyncClient) -> None:
    for body in (b"{not json", b"\xff\xfe", b'{"unterminated": "\\"}'):
        response = await client.post(RPC_PATH, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200
        assert response.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32700, "message": "parse error"},
        }


async def test_deep_nesting_is_refused_before_parsing(client: httpx.AsyncClient) -> None:
    # py_ecc lifts the recursion limit to 100000: without the depth check this body overflows the C stack.
    for body in (b"[" * 200_000, b'{"a":' * 100_000):
        response = await client.post(RPC_PATH, content=body)
        assert response.status_code == 200
        assert response.json()["error"]["code"] == -32600
    nested_in_strings = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "web3_clientVersion",
        "params": [],
        "x": "[" * 1000,
    }
    assert (
        (await client.post(RPC_PATH, json=nested_in_strings))
        .json()["result"]
        .startswith("portcullis-devchain/")
    )


async def test_body_cap_notifications_and_methods(client: httpx.AsyncClient) -> None:
    too_big = await client.post(RPC_PATH, content=b" " * (MAX_RPC_BODY + 1))
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == -32600
    notification = await client.post(RPC_PATH, json={"jsonrpc": "2.0", "method": "eth_chainId"})
    assert notification.status_code == 204 and notification.content == b""
    assert (await client.get(RPC_PATH)).status_code == 405
