"""Slow and idle clients against a real ``portcullis serve`` over raw sockets: late headers, a late body and a
silent connection are closed within the configured bounds (2 s here; the test allows 8 s), a normal request
still works meanwhile, and connections beyond the cap get 503 with Retry-After."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.server import ServerProcess

BOUND = 2  # every slow-client setting of the test server, in seconds
CLOSED_WITHIN = 8.0  # what the test accepts, with room for a loaded machine
HEADERS = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 400 + b"\r\n\r\n"
NONCE_HEAD = (
    b"POST /siwe/nonce HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 400\r\n\r\n"
)


@dataclass
class SlowClient:
    """One raw connection: sends ``first`` at once, then ``dribble`` a byte every 0.25 s, and records what
    came back and when the server closed the connection."""

    port: int
    first: bytes = b""
    dribble: bytes = b""
    received: bytes = b""
    closed_after: float | None = None
    thread: threading.Thread = field(init=False)

    def start(self) -> SlowClient:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.settimeout(0.25)
            started = time.monotonic()
            sock.sendall(self.first)
            sent = 0
            while time.monotonic() - started < 3 * CLOSED_WITHIN:
                try:
                    if sent < len(self.dribble):
                        sock.sendall(self.dribble[sent : sent + 1])
                        sent += 1
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed_after = time.monotonic() - started
                    return
                self.received += data

    def join(self) -> SlowClient:
        self.thread.join()
        return self


def test_slow_headers_slow_body_and_silence_are_cut_off(tmp_path: Path) -> None:
    env = {
        "PORTCULLIS_HTTP_HEADER_TIMEOUT_SECONDS": str(BOUND),
        "PORTCULLIS_HTTP_BODY_TIMEOUT_SECONDS": str(BOUND),
        "PORTCULLIS_HTTP_KEEP_ALIVE_SECONDS": str(BOUND),
        "PORTCULLIS_DEV_CHAIN": "false",
    }
    with ServerProcess(tmp_path, **env) as server:
        slow_headers = SlowClient(server.port, dribble=HEADERS).start()
        slow_body = SlowClient(server.port, first=NONCE_HEAD, dribble=b"{" + b" " * 398 + b"}").start()
        silent = SlowClient(server.port).start()
        idle = SlowClient(server.port, first=b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").start()
        # meanwhile, ordinary requests are served
        with httpx.Client(base_url=server.url, timeout=5) as client:
            assert client.get("/health").status_code == 200
            assert client.post("/siwe/nonce", json={}).status_code == 201
        for conn in (slow_headers, slow_body, silent, idle):
            conn.join()
            assert conn.closed_after is not None and conn.closed_after <= CLOSED_WITHIN, conn
        assert slow_headers.received.startswith(b"HTTP/1.1 408 ")
        status, _, rest = slow_body.received.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 408 ")
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"] == "request_timeout"
        assert silent.received == b""
        assert idle.received.startswith(b"HTTP/1.1 200 ")  # answered, then closed when idle
        assert httpx.get(f"{server.url}/health").status_code == 200


def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    env = {"PORTCULLIS_HTTP_MAX_CONNECTIONS": "3", "PORTCULLIS_HTTP_HEADER_TIMEOUT_SECONDS": "60"}
    with ServerProcess(tmp_path, PORTCULLIS_DEV_CHAIN="false", **env) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            time.sleep(0.3)  # let the server see all three
            refused = httpx.get(f"{server.url}/health", timeout=5)
            assert refused.status_code == 503
            assert refused.json()["error"] == "temporarily_unavailable"
            assert int(refused.headers["Retry-After"]) >= 1
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while (status := httpx.get(f"{server.url}/health", timeout=5).status_code) != 200:
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
