"""A local Ethereum JSON-RPC stub that answers ENS reverse lookups with "no name", for a benchmark peer.

signinwithethereum/oidc-provider resolves the signer's ENS name (viem ``getEnsName``: one ``eth_call`` of
the ENS Universal Resolver's ``reverseWithGateways``) whenever it builds an account's claims, i.e. for
every ID token. With no RPC it would ask a public node over the Internet, which this machine cannot
reach; this stub answers on loopback as a node would for an address with no primary name: the ABI
encoding of ``("", address(0), address(0))``. ``eth_chainId`` says mainnet; anything else is a JSON-RPC
error. It counts the calls it answered (``GET /count``) so the benchmark can show the lookups happened.

    .venv/bin/python bench/ens_stub_rpc.py PORT
"""

from __future__ import annotations

import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (string name, address resolver, address reverseResolver) = ("", 0, 0): the string's offset (3 words of
# head), two zero addresses, then the string's length 0.
EMPTY_REVERSE = "0x" + (96).to_bytes(32, "big").hex() + "00" * 96


def answer(call: dict[str, Any]) -> dict[str, Any]:
    method = call.get("method")
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
    if method == "eth_call":
        reply["result"] = EMPTY_REVERSE
    elif method == "eth_chainId":
        reply["result"] = "0x1"
    else:
        reply["error"] = {"code": -32601, "message": f"method not served by the stub: {method}"}
    return reply


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a node's RPC endpoint would be
    count = 0

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without this, Nagle's algorithm holds the body until the
        # client's delayed ACK (40 ms), and every lookup would look like a slow node.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
        calls = body if isinstance(body, list) else [body]
        lookups = [call for call in calls if isinstance(call, dict) and call.get("method") == "eth_call"]
        Handler.count += len(lookups)
        replies = [answer(call) if isinstance(call, dict) else {} for call in calls]
        self._send(json.dumps(replies if isinstance(body, list) else replies[0]).encode())

    def do_GET(self) -> None:
        self._send(json.dumps({"eth_call": Handler.count}).encode())

    def _send(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per lookup would be the loudest part of the benchmark


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
