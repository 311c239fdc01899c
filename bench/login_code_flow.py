"""Complete authorization-code logins per second: Portcullis beside signinwithethereum/oidc-provider.

One login, as a relying party and a person at the hosted page would do it, with a fresh wallet each time:
the authorization request, the hosted page's JSON calls (the wallet signs the EIP-4361 message it is
given, consent), the redirect with the code, the code exchange at the token endpoint, and the ID token
checked (signature against the server's JWKS, iss, aud, nonce, exp). Contenders:

1. ``portcullis plain``: ``portcullis serve`` (one process, SQLite, development mode, dev chain off,
   rate limits off), a client_secret_basic client: GET /authorize (the hosted page, whose embedded view
   the script reads), POST the signature to the page's sign-in call, POST its consent call, POST /token;
2. ``portcullis FAPI``: the same process, a FAPI 2.0 client: PAR with private_key_jwt and a DPoP proof,
   GET /authorize with the request_uri, the same page calls, POST /token with a fresh client assertion
   and DPoP proof (DPoP-bound tokens);
3. ``siwe-oidc``: signinwithethereum/oidc-provider (Nuxt/Nitro on Node, panva oidc-provider inside, its
   Redis adapter on a Redis server of its own started here), built locally under
   ``bench/peers/siwe-oidc-provider/`` (never committed), its wallet-connect UI layer left out and its
   rate-limit middleware removed; a client_secret_basic client seeded through its NUXT_OIDC_DEFAULT_CLIENTS.
   GET /auth (303 to its interaction page), GET /api/interaction/<uid> (the page's data call), POST
   /api/interaction/<uid> (the signature; SIWE is its consent), GET the returned resume URL (303 to the
   client with the code), POST /token. Its ENS lookup goes to ``bench/ens_stub_rpc.py`` on loopback.
   Where the build is not found (``PORTCULLIS_BENCH_SIWE_OIDC`` names its ``.output/server/index.mjs``;
   default ``bench/peers/siwe-oidc-provider/src/.output/server/index.mjs``), a line says it is absent and
   its column is skipped.

Concurrency levels (default 1, 8, 32) x contenders are run in each of 3 interleaved passes (every server
waits idle while another is measured); the table shows the median of the passes and their range, then
the ratios of medians. Server CPU per login is the process's user+system time over the run (the peer's
Redis separately).

    .venv/bin/python bench/login_code_flow.py [--seconds 6] [--concurrency 1,8,32] [--passes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.login_http import Wallet
from bench.machine import machine_note
from tests.flow.client import (
    Flow,
    Key,
    fapi_client,
    page_headers,
    page_view,
    pkce_pair,
    redirect_params,
    secret_client,
    siwe_message,
)
from tests.integration.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
PEER_DEFAULT = ROOT / "bench" / "peers" / "siwe-oidc-provider" / "src" / ".output" / "server" / "index.mjs"
REDIRECT_URI = "https://bench.example/cb"
PLAIN_ID, FAPI_ID = "bench", "bench-fapi"
REDIS_NO_DISK = ["--save", "", "--appendonly", "no"]

Login = Callable[[httpx.AsyncClient, Wallet], Awaitable[None]]


class Contender(Protocol):
    name: str
    url: str

    def pids(self) -> list[int]: ...

    async def login(self, http: httpx.AsyncClient, wallet: Wallet) -> None: ...


def basic_auth(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class IdTokenCheck:
    """The relying party's ID token check: signature by a key of the issuer's JWKS, iss, aud, nonce, exp."""

    def __init__(self, issuer: str, jwks: dict[str, Any]) -> None:
        self.issuer = issuer
        self.keys = {key.get("kid"): jwt.PyJWK(key) for key in jwks["keys"] if key.get("use", "sig") == "sig"}

    def __call__(self, token: str, client_id: str, nonce: str) -> None:
        header = jwt.get_unverified_header(token)
        key = self.keys[header.get("kid")]
        claims = jwt.decode(
            token,
            key,
            algorithms=[header["alg"]],
            audience=client_id,
            issuer=self.issuer,
            options={"require": ["exp", "iat", "sub", "nonce"]},
        )
        if claims["nonce"] != nonce:
            raise RuntimeError("ID token: nonce is not the one sent")


def _expect(reply: httpx.Response, status: int, step: str) -> httpx.Response:
    if reply.status_code != status:
        raise RuntimeError(f"{step}: HTTP {reply.status_code} {reply.text[:300]}")
    return reply


class Portcullis:
    """One ``portcullis serve`` process holding the plain and the FAPI client; ``mode`` picks the client."""

    def __init__(self, data: Path) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.key = Key()
        clients = [
            secret_client(PLAIN_ID, self.secret, [REDIRECT_URI]),
            fapi_client(FAPI_ID, self.key, REDIRECT_URI),
        ]
        (data / "clients.json").write_text(json.dumps(clients))
        self.server = ServerProcess(
            data,
            PORTCULLIS_MODE="development",
            PORTCULLIS_DEV_CHAIN="false",
            PORTCULLIS_RATE_LIMITS="false",
            PORTCULLIS_CLIENTS_FILE=str(data / "clients.json"),
        )
        self.url = self.server.url
        self.check: IdTokenCheck | None = None

    def __enter__(self) -> Portcullis:
        self.server.__enter__()
        self.check = IdTokenCheck(self.url, httpx.get(f"{self.url}/jwks", timeout=10).json())
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__()

    def pids(self) -> list[int]:
        assert self.server.proc is not None
        return [self.server.proc.pid]

    def contender(self, fapi: bool) -> PortcullisClient:
        return PortcullisClient(self, fapi)


class PortcullisClient:
    def __init__(self, server: Portcullis, fapi: bool) -> None:
        self.server, self.fapi = server, fapi
        self.name = "portcullis FAPI" if fapi else "portcullis plain"
        self.url = server.url

    def pids(self) -> list[int]:
        return self.server.pids()

    async def login(self, http: httpx.AsyncClient, wallet: Wallet) -> None:
        s = self.server
        if self.fapi:
            flow = Flow(http, s.url, FAPI_ID, REDIRECT_URI, key=s.key, dpop=Key())
        else:
            flow = Flow(http, s.url, PLAIN_ID, REDIRECT_URI, auth_headers=basic_auth(PLAIN_ID, s.secret))
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": flow.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if self.fapi:
            pushed = _expect(await flow.push(**params), 201, "PAR")
            query = {"client_id": FAPI_ID, "request_uri": pushed.json()["request_uri"]}
        else:
            query = params
        view = page_view(_expect(await http.get("/authorize", params=query), 200, "authorize"))
        message = siwe_message(view, wallet.address)
        body = {"message": message, "signature": wallet.sign(message)}
        headers = page_headers(view)
        _expect(await http.post(view["endpoints"]["signin"], json=body, headers=headers), 200, "sign-in")
        decided = await http.post(view["endpoints"]["consent"], json={"approve": True}, headers=headers)
        got = redirect_params(_expect(decided, 200, "consent").json()["redirect_to"])
        if got.get("state") != state or "code" not in got:
            raise RuntimeError(f"redirect: {got}")
        form = {
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        }
        if not self.fapi:
            # client_secret_basic: the Authorization header alone, no client_id in the form.
            reply = await http.post("/token", data=form, headers=flow.auth_headers)
        else:
            reply = await flow.token(form)
        tokens = _expect(reply, 200, "token").json()
        if self.fapi and tokens.get("token_type") != "DPoP":
            raise RuntimeError(f"token: expected a DPoP-bound token, got {tokens.get('token_type')}")
        assert s.check is not None
        s.check(tokens["id_token"], flow.client_id, nonce)


class SiweOidc:
    """signinwithethereum/oidc-provider's built server, its own Redis, the ENS stub RPC."""

    name = "siwe-oidc"

    def __init__(self, entry: Path, scratch: Path) -> None:
        self.entry, self.scratch = entry, scratch
        self.secret = secrets.token_urlsafe(24)
        self.port, self.redis_port, self.rpc_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.check: IdTokenCheck | None = None

    def _start(self, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> SiweOidc:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.redis = self._start(
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", *REDIS_NO_DISK],
            cwd=self.scratch,
        )
        self.rpc = self._start([sys.executable, str(ROOT / "bench" / "ens_stub_rpc.py"), str(self.rpc_port)])
        _wait(lambda: _redis_command(self.redis_port, "PING") == "PONG", "redis-server")
        # Its default-client seeding keeps the secret of a client already stored: store ours first.
        client = {
            "client_id": PLAIN_ID,
            "client_secret": self.secret,
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        _redis_command(self.redis_port, "SET", f"oidc:Client:{PLAIN_ID}", json.dumps(client))
        env = {
            **os.environ,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "NODE_ENV": "production",
            "NUXT_OIDC_BASE_URL": self.url,
            "NUXT_OIDC_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "NUXT_OIDC_COOKIE_KEYS": secrets.token_urlsafe(32),
            "NUXT_OIDC_ETH_PROVIDER": f"http://127.0.0.1:{self.rpc_port}",
            "NUXT_OIDC_DEFAULT_CLIENTS": json.dumps({PLAIN_ID: REDIRECT_URI}),
            "NUXT_OIDC_REQUIRE_SECRET": "true",
        }
        self.node = self._start(["node", str(self.entry)], env=env, cwd=self.entry.parent)

        def ready() -> bool:
            if self.node.poll() is not None:
                raise RuntimeError(f"siwe-oidc exited with {self.node.returncode}")
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{self.url}/jwks", timeout=1).status_code == 200
            return False

        _wait(ready, "siwe-oidc")
        self.check = IdTokenCheck(self.url, httpx.get(f"{self.url}/jwks", timeout=10).json())
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def pids(self) -> list[int]:
        return [self.node.pid]

    def redis_pid(self) -> int:
        return self.redis.pid

    def ens_lookups(self) -> int:
        count: int = httpx.get(f"http://127.0.0.1:{self.rpc_port}/count", timeout=5).json()["eth_call"]
        return count

    async def login(self, http: httpx.AsyncClient, wallet: Wallet) -> None:
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        params = {
            "response_type": "code",
            "client_id": PLAIN_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        started = _expect(await http.get("/auth", params=params), 303, "auth")
        uid = started.headers["location"].rstrip("/").rsplit("/", 1)[-1]
        details = _expect(await http.get(f"/api/interaction/{uid}"), 200, "interaction data").json()
        message = self._message(wallet.address, details["nonce"])
        body = {"message": message, "signature": wallet.sign(message)}
        done = _expect(await http.post(f"/api/interaction/{uid}", json=body), 200, "interaction post")
        location = done.json()["redirectTo"]
        for _ in range(4):  # the resume URL, then (at most a few hops) the client's redirect_uri
            if location.startswith(REDIRECT_URI):
                break
            hop = await http.get(location)
            if hop.status_code not in (302, 303):
                raise RuntimeError(f"resume: HTTP {hop.status_code} {hop.text[:300]}")
            location = hop.headers["location"]
        got = redirect_params(location)
        if got.get("state") != state or "code" not in got:
            raise RuntimeError(f"redirect: {location}")
        form = {
            "grant_type": "authorization_code",
            "code": got["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        }
        reply = await http.post("/token", data=form, headers=basic_auth(PLAIN_ID, self.secret))
        tokens = _expect(reply, 200, "token").json()
        assert self.check is not None
        self.check(tokens["id_token"], PLAIN_ID, nonce)

    def _message(self, address: str, nonce: str) -> str:
        """The EIP-4361 text its page builds: its host as the domain, its origin as the URI, the
        statement it passes, the redirect_uri as the first resource (its server checks that)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return (
            f"{urlsplit(self.url).netloc} wants you to sign in with your Ethereum account:\n"
            f"{address}\n\nSign in with Ethereum\n\nURI: {self.url}\nVersion: 1\nChain ID: 1\n"
            f"Nonce: {nonce}\nIssued At: {now}\nResources:\n- {REDIRECT_URI}"
        )


def _redis_command(port: int, *args: str) -> str:
    """One RESP command on a fresh connection (the bench needs two, no client library for it)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        sock.sendall(payload.encode())
        return sock.recv(4096).decode().strip().lstrip("+")
    return ""


def _wait(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {timeout:.0f} s")


@dataclass(frozen=True, slots=True)
class Run:
    logins: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU per login
    errors: int

    @property
    def rate(self) -> float:
        return self.logins / self.seconds


async def run_level(contender: Contender, concurrency: int, seconds: float) -> Run:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = 0.0

    async def worker(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            http.cookies.clear()  # each login is a new browser
            start = time.perf_counter()
            try:
                await contender.login(http, Wallet())
            except (RuntimeError, httpx.HTTPError, jwt.PyJWTError, KeyError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)

    clients = [
        httpx.AsyncClient(base_url=contender.url, timeout=60, limits=limits) for _ in range(concurrency)
    ]
    try:
        for http in clients[:2]:  # warm-up: connections, caches, the secret's memo
            http.cookies.clear()
            await contender.login(http, Wallet())
        cpu = sum(cpu_seconds(pid) for pid in contender.pids())
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for http in clients))
        elapsed = time.perf_counter() - start
        cpu = sum(cpu_seconds(pid) for pid in contender.pids()) - cpu
    finally:
        for http in clients:
            await http.aclose()
    if errors:
        print(f"  {contender.name} c={concurrency}: {len(errors)} failed logins, first: {errors[0]}")
    if not latencies:
        raise RuntimeError(f"{contender.name}: no login succeeded")
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return Run(len(latencies), elapsed, q[49] * 1000, q[98] * 1000, cpu / len(latencies) * 1000, len(errors))


def load_note() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def median_range(values: list[float], fmt: str = "{:,.1f}") -> str:
    mid = statistics.median(values)
    return f"{fmt.format(mid)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def peer_entry() -> Path | None:
    configured = os.environ.get("PORTCULLIS_BENCH_SIWE_OIDC")
    entry = Path(configured) if configured else PEER_DEFAULT
    if not entry.is_file():
        print(
            f"siwe-oidc (signinwithethereum/oidc-provider): absent, no build at {entry} "
            "(set PORTCULLIS_BENCH_SIWE_OIDC to its .output/server/index.mjs); its column is skipped"
        )
        return None
    if shutil.which("node") is None:
        print("siwe-oidc: node is not installed; its column is skipped")
        return None
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run (default 6)")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    print(f"machine: {machine_note()}; server, peer and client on one machine")
    print(f"load average at start: {load_note()}")
    entry = peer_entry()
    results: dict[tuple[str, int], list[Run]] = {}
    with contextlib.ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (data / "portcullis").mkdir()
        portcullis = stack.enter_context(Portcullis(data / "portcullis"))
        contenders: list[Contender] = [portcullis.contender(fapi=False), portcullis.contender(fapi=True)]
        peer: SiweOidc | None = None
        if entry is not None:
            (data / "peer").mkdir()
            peer = stack.enter_context(SiweOidc(entry, data / "peer"))
            contenders.append(peer)
        redis_cpu: list[float] = []
        for number in range(1, args.passes + 1):
            print(f"pass {number}/{args.passes} (load average {load_note()})", flush=True)
            for level in levels:
                for contender in contenders:
                    before = cpu_seconds(peer.redis_pid()) if peer is contender and peer else 0.0
                    run = asyncio.run(run_level(contender, level, args.seconds))
                    if peer is contender and peer:
                        redis_cpu.append((cpu_seconds(peer.redis_pid()) - before) / run.logins * 1000)
                    results.setdefault((contender.name, level), []).append(run)
        lookups = peer.ens_lookups() if peer else 0
        names = [c.name for c in contenders]

    print(f"load average at end: {load_note()}")
    print()
    print(f"logins/s: median of {args.passes} passes (range); p50, p99 and server CPU ms per login: medians")
    head = f"{'contender':18} {'c':>3} {'logins/s':>24} {'p50 ms':>9} {'p99 ms':>9} {'CPU ms':>7}"
    print(f"{head} {'errors':>6}")
    for name in names:
        for level in levels:
            runs = results[(name, level)]
            print(
                f"{name:18} {level:>3} {median_range([r.rate for r in runs]):>24} "
                f"{statistics.median(r.p50_ms for r in runs):>9.1f} "
                f"{statistics.median(r.p99_ms for r in runs):>9.1f} "
                f"{statistics.median(r.cpu_ms for r in runs):>7.2f} {sum(r.errors for r in runs):>6}"
            )
    if peer is not None:
        print(f"siwe-oidc's Redis: {statistics.median(redis_cpu):.2f} ms CPU per login (median of runs)")
        print(f"siwe-oidc's ENS lookups answered by the stub RPC: {lookups}")
        print()
        print("ratio of medians (Portcullis / siwe-oidc), per level; range = the passes' own ratios")
        for name in names[:2]:
            for level in levels:
                ours = [r.rate for r in results[(name, level)]]
                theirs = [r.rate for r in results[(SiweOidc.name, level)]]
                per_pass = [a / b for a, b in zip(ours, theirs, strict=True)]
                ratio = statistics.median(ours) / statistics.median(theirs)
                print(
                    f"{name:18} c={level:<3} {ratio:5.2f}x  (passes {min(per_pass):.2f}-{max(per_pass):.2f}x)"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
