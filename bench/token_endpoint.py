"""Token-endpoint and introspection requests per second, Portcullis beside panva/node-oidc-provider.

Real server processes: ``portcullis serve`` (uvicorn, one process) on SQLite and, when a PostgreSQL server
answers, on PostgreSQL; and oidc-provider (bench/peers/node-oidc-provider, its in-memory adapter). One load
generator for all of them, wrk, in its own process: one thread, 32 keep-alive connections, a warm-up run
then the measured run; the servers not being measured wait idle. Scenarios:

1. ``client_credentials`` with the client_secret_basic client (RFC 6749 4.4, 2.3.1), scope
   ``service:positions:read``;
2. ``refresh_token`` with the same client: rotating refresh, each answer's refresh token is the
   connection's next one (one chain per connection: presenting a rotated token again revokes its family).
   Our chains start from real authorization-code flows (tests/flow), the peer's from its own models;
3. ``introspection`` (RFC 7662) of a user's access token, by the same client;
4. ``refresh_token`` for a public client (no client authentication), as a SIWE dApp refreshes; our
   chains start from real wallet sign-ins at /siwe/nonce + /siwe/verify;
5-6. ``client_credentials`` and ``introspection`` with ``private_key_jwt`` (RFC 7523, ES256, a fresh
   assertion per request, all made before the run).

4-6 do the work of 1-3 without a client secret to check, which separates that cost from the rest.
7. ``GET /jwks``: the signing keys' JWK Set, no client and no database: the floor of a request.

    .venv/bin/python bench/token_endpoint.py [--seconds 10] [--warmup 2] [--concurrency 32] [--scenarios 1,4]
        [--port 18700]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.oauth.clients import hash_client_secret, verify_client_secret
from bench.login_http import Wallet, _pg_database, message
from bench.machine import machine_note
from tests.flow.client import Flow, authorize
from tests.integration.server import ServerProcess, free_port

PEER_DIR = Path(__file__).resolve().parent / "peers" / "node-oidc-provider"
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SCOPE = "service:positions:read"
REDIRECT_URI = "https://bench.example/cb"
BASIC_ID, JWT_ID = "bench", "bench-jwt"
ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
FORM_SAFE = re.compile(r"[A-Za-z0-9._~-]+")  # tokens put into a form body without encoding
REFRESH_SPARES = 16  # chains beyond one per connection, so a failed refresh does not starve a connection
ASSERTIONS_PER_S = 6000  # the warm-up's pool; the measured pool is sized from the warm-up's rate

# Whose refresh tokens: the confidential client_secret_basic client's, or a public client's (no secret).
Holder = Literal["basic", "public"]


class Contender(Protocol):
    name: str
    url: str
    secret: str
    public_client_id: str
    introspection_path: str
    pid: int

    def refresh_tokens(self, n: int, holder: Holder) -> list[str]: ...

    def user_access_token(self) -> str: ...


class Portcullis:
    """``portcullis serve`` with a clients file holding the two benchmark clients."""

    introspection_path = "/introspect"
    public_client_id = "portcullis-demo"

    def __init__(
        self, label: str, data: Path, secret: str, jwk: dict[str, str], port: int | None = None, **env: str
    ) -> None:
        self.name, self.secret = f"portcullis {label}", secret
        clients = [
            _client(BASIC_ID, token_endpoint_auth_method="client_secret_basic", client_secret=secret),
            _client(JWT_ID, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [jwk]}),
        ]
        (data / "clients.json").write_text(json.dumps(clients))
        self.server = ServerProcess(
            data,
            port=port,
            PORTCULLIS_MODE="development",
            PORTCULLIS_DEV_CHAIN="false",
            PORTCULLIS_RATE_LIMITS="false",
            PORTCULLIS_CLIENTS_FILE=str(data / "clients.json"),
            **env,
        )
        self.url = self.server.url

    def __enter__(self) -> Portcullis:
        self.server.__enter__()
        assert self.server.proc is not None
        self.pid = self.server.proc.pid
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__()

    def _sign_in(self, client: httpx.Client) -> dict[str, str]:
        """A wallet sign-in at the SIWE endpoints: tokens for the public client portcullis-demo."""
        wallet = Wallet()  # a fresh wallet each time, as a real population would be (see login_http.py)
        offer = client.post("/siwe/nonce").json()
        text = message(offer, wallet.address)
        reply = client.post("/siwe/verify", json={"message": text, "signature": wallet.sign(text)})
        reply.raise_for_status()
        tokens: dict[str, str] = reply.json()
        return tokens

    async def _code_flow(self, http: httpx.AsyncClient) -> str:
        """The client_secret_basic client's authorization-code flow, as tests/flow scripts it: the request,
        the hosted page's wallet sign-in and consent, the code exchange. Returns the refresh token."""
        basic = {"Authorization": "Basic " + base64.b64encode(f"{BASIC_ID}:{self.secret}".encode()).decode()}
        flow = _BasicFlow(http, self.url, BASIC_ID, REDIRECT_URI, auth_headers=basic)
        got = await authorize(flow, Account.create(), pushed=False)
        form = {"grant_type": "authorization_code", "code": got.code, "code_verifier": got.verifier}
        reply = await flow.token({**form, "redirect_uri": REDIRECT_URI})
        reply.raise_for_status()
        token: str = reply.json()["refresh_token"]
        return token

    def refresh_tokens(self, n: int, holder: Holder) -> list[str]:
        if holder == "public":
            with httpx.Client(base_url=self.url, timeout=30) as client:
                return [self._sign_in(client)["refresh_token"] for _ in range(n)]

        async def flows() -> list[str]:
            tokens = []
            for _ in range(n):  # a cookie jar per flow: each is its own browser
                async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
                    tokens.append(await self._code_flow(http))
            return tokens

        return asyncio.run(flows())

    def user_access_token(self) -> str:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            return self._sign_in(client)["access_token"]


class _BasicFlow(Flow):
    def client_auth(self) -> dict[str, str]:
        return {}  # client_secret_basic: the Authorization header only


class OidcProvider:
    """bench/peers/node-oidc-provider/server.mjs: the same clients, refresh rotation on."""

    introspection_path = "/token/introspection"
    public_client_id = "bench-public"

    def __init__(self, secret: str, jwk: dict[str, str], port: int | None = None) -> None:
        self.name, self.secret = "oidc-provider", secret
        port = port or free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "PORT": str(port), "BENCH_SECRET": secret, "BENCH_JWT_KEY": json.dumps(jwk)}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OidcProvider:
        self.proc = subprocess.Popen(
            # Its start-up warnings and notices (development keys, in-memory adapter, default TTLs) are
            # about deployment, not this benchmark.
            ["node", "server.mjs"],
            cwd=PEER_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("oidc-provider did not start in 30 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def refresh_tokens(self, n: int, holder: Holder) -> list[str]:
        client_id = self.public_client_id if holder == "public" else BASIC_ID
        params: dict[str, str | int] = {"n": n, "client_id": client_id}
        reply = httpx.post(f"{self.url}/bench/refresh-tokens", params=params, timeout=30)
        reply.raise_for_status()
        tokens: list[str] = reply.json()
        return tokens

    def user_access_token(self) -> str:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_tokens(1, "public")[0]}
        form["client_id"] = self.public_client_id
        reply = httpx.post(f"{self.url}/token", data=form, timeout=30)
        reply.raise_for_status()
        token: str = reply.json()["access_token"]
        return token


def _client(client_id: str, **fields: object) -> dict[str, object]:
    return {
        "client_id": client_id,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["client_credentials", "refresh_token", "authorization_code"],
        "scope": SCOPE,
        **fields,
    }


class AssertionKey:
    """The private_key_jwt client's ES256 key; assertions are made here, before a run, not during it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": "bench-1",
            "use": "sig",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        self.header = _b64(json.dumps({"alg": "ES256", "kid": "bench-1", "typ": "JWT"}).encode())

    def assertions(self, audience: str, n: int) -> Iterator[str]:
        now = int(time.time())
        for _ in range(n):
            claims = {"iss": JWT_ID, "sub": JWT_ID, "aud": audience, "iat": now, "exp": now + 240}
            claims["jti"] = secrets.token_urlsafe(16)
            signing_input = f"{self.header}.{_b64(json.dumps(claims).encode())}"
            r, s = utils.decode_dss_signature(
                self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
            )
            yield f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    introspect: bool  # else the token endpoint
    body: str  # the form body; {public} is the contender's public client; a pool item is appended
    auth: Literal["basic", "public", "jwt"]  # client_secret_basic, none, private_key_jwt
    pool: Literal["", "refresh", "assertion"] = ""
    jwks: bool = False  # GET the contender's JWK Set instead (no body, no client)


CC = f"grant_type=client_credentials&scope={SCOPE}"
JWT_AUTH = f"client_assertion_type={ASSERTION_TYPE}&client_assertion="
SCENARIOS = [
    # The three figures, with the client_secret_basic client.
    Scenario("client_credentials", False, CC, "basic"),
    Scenario("refresh_token", False, "grant_type=refresh_token&refresh_token=", "basic", "refresh"),
    Scenario("introspection", True, "token=", "basic"),
    # The same work without a client secret to check.
    Scenario(
        "refresh_token, public client",
        False,
        "grant_type=refresh_token&client_id={public}&refresh_token=",
        "public",
        "refresh",
    ),
    Scenario("client_credentials, private_key_jwt", False, f"{CC}&{JWT_AUTH}", "jwt", "assertion"),
    Scenario("introspection, private_key_jwt", True, f"token=ACCESS&{JWT_AUTH}", "jwt", "assertion"),
    Scenario("jwks", False, "", "public", jwks=True),
]

_LUA_SUMMARY = """
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function done(summary, latency, requests)
  local starved, inactive = 0, 0
  for _, t in ipairs(threads) do
    starved = starved + (t:get("starved") or 0)
    inactive = inactive + (t:get("inactive") or 0)
  end
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d %.0f %.0f %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status + inactive, e.timeout, latency:percentile(50),
    latency:percentile(99), starved))
end
"""

_LUA_POOL = """
local pool, n = {}, 0
starved = 0
function init(args)
  for line in io.lines("%(pool)s") do n = n + 1; pool[n] = line end
end
function request()
  local item = "pool-exhausted"
  if n > 0 then item = pool[n]; pool[n] = nil; n = n - 1 else starved = starved + 1 end
  return wrk.format(nil, nil, nil, "%(body)s" .. item)
end
"""

_LUA_CHAIN = """
function response(status, headers, body)
  local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then n = n + 1; pool[n] = token end
end
"""

# An introspection answer that is not active (RFC 7662 2.2) is a 200 that did not do the work: an error.
_LUA_ACTIVE = """
inactive = 0
function response(status, headers, body)
  if status == 200 and not body:find('"active":%s*true') then inactive = inactive + 1 end
end
"""


def lua_script(body: str, basic: str | None, pool: Path | None, chain: bool, introspect: bool) -> str:
    if not body:
        return 'wrk.method = "GET"\n' + _LUA_SUMMARY
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"']
    if basic:
        lines.append(f'wrk.headers["Authorization"] = "Basic {basic}"')
    if pool is None:
        lines.append(f'wrk.body = "{body}"')
    else:
        lines.append(_LUA_POOL % {"pool": pool, "body": body})
        if chain:
            lines.append(_LUA_CHAIN)
    if introspect:
        lines.append(_LUA_ACTIVE)
    return "\n".join(lines) + _LUA_SUMMARY


@dataclass(frozen=True, slots=True)
class Result:
    requests: int
    seconds: float
    errors: int  # socket errors, timeouts, HTTP >= 400 and inactive introspection answers
    p50_ms: float
    p99_ms: float
    starved: int
    server_cpu: float  # cores the server process used during the run
    client_cpu: float  # cores wrk used

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pids: list[int], timeout: float = 90.0) -> None:
    """Until no server burns CPU: a slow server still drains its queue after wrk has stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = [cpu_seconds(p) for p in pids]
        time.sleep(0.3)
        if all(cpu_seconds(p) - b < 0.03 for p, b in zip(pids, before, strict=True)):
            return


def wrk(url: str, script: Path, seconds: float, concurrency: int, pid: int) -> Result:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "60s", "-s", str(script), url]
    server_before, client_before = cpu_seconds(pid), os.times()
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - start
    client_after = os.times()
    server = (cpu_seconds(pid) - server_before) / elapsed
    client = (
        client_after.children_user
        + client_after.children_system
        - client_before.children_user
        - client_before.children_system
    ) / elapsed
    line = next(x for x in out.splitlines() if x.startswith("WRK_RESULT"))
    n, duration_us, sock, status, _timeouts, p50, p99, starved = (int(float(v)) for v in line.split()[1:])
    return Result(n, duration_us / 1e6, sock + status, p50 / 1000, p99 / 1000, starved, server, client)


def run_scenario(
    s: Scenario, c: Contender, key: AssertionKey, work: Path, args: argparse.Namespace, pids: list[int]
) -> Result:
    path = "/jwks" if s.jwks else c.introspection_path if s.introspect else "/token"
    body = s.body.replace("{public}", c.public_client_id)
    if s.introspect:
        token = c.user_access_token()
        assert FORM_SAFE.fullmatch(token)
        body = body.replace("ACCESS", token) if "ACCESS" in body else body + token
    basic = base64.b64encode(f"{BASIC_ID}:{c.secret}".encode()).decode() if s.auth == "basic" else None

    def measure(seconds: float, pool_size: int) -> Result:
        pool = None
        if s.pool:
            pool = work / f"pool-{uuid.uuid4().hex}"
            if s.pool == "refresh":
                items = c.refresh_tokens(pool_size, "public" if s.auth == "public" else "basic")
            else:
                items = list(key.assertions(c.url, pool_size))
            assert all(FORM_SAFE.fullmatch(item) for item in items)
            pool.write_text("\n".join(items) + "\n")
        script = work / f"{uuid.uuid4().hex}.lua"
        script.write_text(lua_script(body, basic, pool, s.pool == "refresh", s.introspect))
        wait_idle(pids)
        return wrk(c.url + path, script, seconds, args.concurrency, c.pid)

    if s.pool == "refresh":
        warm = measure(args.warmup, args.concurrency)
        return measure(args.seconds, args.concurrency + REFRESH_SPARES)
    warm = measure(args.warmup, int(ASSERTIONS_PER_S * args.warmup) if s.pool else 0)
    # Size the measured assertion pool from the warm-up's rate, with room to spare.
    return measure(args.seconds, int(warm.rate * args.seconds * 2) + 2000 if s.pool else 0)


def require_tools() -> tuple[str, str]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk (the load generator) is not installed: apt-get install -y wrk")
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise SystemExit("node and npm are needed for the peer (bench/peers/node-oidc-provider)")
    stamp, lock = PEER_DIR / "node_modules" / ".installed", PEER_DIR / "package-lock.json"
    if not stamp.exists() or lock.stat().st_mtime > stamp.stat().st_mtime:
        subprocess.run(["npm", "ci", "--prefix", str(PEER_DIR), "--no-audit", "--no-fund"], check=True)
        stamp.touch()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    peer = json.loads((PEER_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    return node, peer


def secret_check_ms(secret: str, samples: int = 5) -> float:
    """What Portcullis spends checking one client secret (scrypt), the same call its token endpoint makes."""
    stored = hash_client_secret(secret)
    start = time.perf_counter()
    for _ in range(samples):
        verify_client_secret(secret, stored)
    return (time.perf_counter() - start) / samples * 1000


def postgres_url() -> str | None:
    """PORTCULLIS_TEST_DATABASE_URL, else the usual local server, if it answers."""
    url = os.environ.get("PORTCULLIS_TEST_DATABASE_URL", PG_DEFAULT)
    probe = subprocess.run(
        [sys.executable, "-c", f"import asyncio, asyncpg; asyncio.run(asyncpg.connect({_plain(url)!r}))"],
        capture_output=True,
        timeout=15,
        check=False,
    )
    return url if probe.returncode == 0 else None


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scenarios", default="all", help="comma-separated scenario numbers (1-7) or all")
    parser.add_argument("--port", type=int, default=None, help="first of three ports (default: free ones)")
    args = parser.parse_args()
    picks = range(1, len(SCENARIOS) + 1) if args.scenarios == "all" else map(int, args.scenarios.split(","))
    chosen = [SCENARIOS[i - 1] for i in picks]

    node, peer_version = require_tools()
    pg = postgres_url()
    pg_name = f"portcullis_bench_{uuid.uuid4().hex[:8]}"
    secret, key = secrets.token_urlsafe(24), AssertionKey()
    print(f"machine: {machine_note()}; load average at start {os.getloadavg()[0]:.2f}")
    print(
        f"load generator: wrk -t1 -c{args.concurrency}, {args.warmup:g} s warm-up then {args.seconds:g} s "
        "measured, on the same cores as the servers (measured one at a time, the others idle)"
    )
    print("portcullis: development mode, dev chain off, rate limits OFF (PORTCULLIS_RATE_LIMITS=false)")
    print(
        f"portcullis: one client_secret_basic check (scrypt, measured here) {secret_check_ms(secret):.1f} ms"
    )
    print(f"peer: oidc-provider {peer_version} on Node {node}, in-memory adapter")
    if pg is None:
        print("PostgreSQL: not reachable, SQLite only")

    results: dict[tuple[str, str], Result] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        (work / "sqlite").mkdir()
        contenders: list[Contender] = [
            stack.enter_context(Portcullis("sqlite", work / "sqlite", secret, key.jwk, _port(args, 0))),
        ]
        if pg is not None:
            (work / "pg").mkdir()
            db = _pg_database(pg, pg_name, create=True)
            stack.callback(_pg_database, pg, pg_name, False)
            pg_server = Portcullis(
                "postgresql", work / "pg", secret, key.jwk, _port(args, 1), PORTCULLIS_DATABASE_URL=db
            )
            contenders.append(stack.enter_context(pg_server))
        contenders.append(stack.enter_context(OidcProvider(secret, key.jwk, _port(args, 2))))
        pids = [c.pid for c in contenders]

        print(
            f"\n{'scenario':<36} {'contender':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'errors':>6} {'server cpu':>10} {'wrk cpu':>7}"
        )
        for s in chosen:
            for c in contenders:
                r = run_scenario(s, c, key, work, args, pids)
                results[(s.name, c.name)] = r
                note = f"  ({r.starved} requests found the pool empty)" if r.starved else ""
                print(
                    f"{s.name:<36} {c.name:<22} {r.rate:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
                    f"{r.errors:>6} {r.server_cpu:>10.2f} {r.client_cpu:>7.2f}{note}",
                    flush=True,
                )
        print(f"\nload average at end {os.getloadavg()[0]:.2f}\n")
        print_table(chosen, [c.name for c in contenders], results)
    return 0


def _port(args: argparse.Namespace, offset: int) -> int | None:
    return None if args.port is None else int(args.port) + offset


def print_table(chosen: list[Scenario], names: list[str], results: dict[tuple[str, str], Result]) -> None:
    ours, peer = names[:-1], names[-1]
    head = " | ".join(f"{n} req/s (p50/p99 ms)" for n in names)
    ratios = " | ".join(f"ratio {n.split()[-1]}" for n in ours)
    print(f"| scenario | {head} | {ratios} |")
    print("|" + " --- |" * (1 + len(names) + len(ours)))
    for s in chosen:
        cells = []
        for n in names:
            r = results[(s.name, n)]
            errors = f", {r.errors} errors" if r.errors else ""
            cells.append(f"{r.rate:,.1f} ({r.p50_ms:,.0f}/{r.p99_ms:,.0f}{errors})")
        base = results[(s.name, peer)].rate
        ratio = [f"{results[(s.name, n)].rate / base:.3g}x" for n in ours]
        print(f"| {s.name} | {' | '.join(cells)} | {' | '.join(ratio)} |")


if __name__ == "__main__":
    raise SystemExit(main())
