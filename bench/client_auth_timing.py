"""How long a refused client authentication takes, by what it claims: can timing list the registered clients?

A real ``portcullis serve`` process (SQLite) with a client_secret_basic client and a private_key_jwt
client. One keep-alive connection sends, interleaved round by round, a wrong secret for the registered
client, a secret for an unknown client_id, a secret for the private_key_jwt client (another method), the
right secret (the HMAC fast path after the first), an assertion for an unknown issuer and a forged
assertion for the registered one. The failure budget and locks are raised out of the way (they would
answer 429 within a few rounds). Prints median, p10 and p90 per kind and each ratio to its counterpart.

    .venv/bin/python bench/client_auth_timing.py [--rounds 100]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_note
from tests.flow.client import Key, client_assertion, service_client
from tests.integration.server import ServerProcess

SECRET = "the-broker-secret-0123456789-abcdefghij"
SCOPE = "service:positions:read"
CC = {"grant_type": "client_credentials", "scope": SCOPE}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=100)
    rounds = parser.parse_args().rounds
    key = Key()
    with tempfile.TemporaryDirectory() as tmp:
        broker = {
            "client_id": "broker",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": SECRET,
            "scope": SCOPE,
        }
        clients = Path(tmp) / "clients.json"
        clients.write_text(json.dumps([broker, service_client("svc", key, SCOPE)]))
        forger = Key(kid=key.kid)
        env = {
            "PORTCULLIS_CLIENTS_FILE": str(clients),
            "PORTCULLIS_DEV_CHAIN": "false",
            "PORTCULLIS_RATE_LIMITS": "false",
            "PORTCULLIS_LOCK_IP_THRESHOLD": "1000000",
            "PORTCULLIS_CLIENT_AUTH_LOCK_THRESHOLD": "1000000",
            "PORTCULLIS_CLIENT_AUTH_FAILURE_BUDGET": "1000000",
        }
        with ServerProcess(Path(tmp) / "data", **env) as server, httpx.Client(base_url=server.url) as http:

            def secret(client_id: str, value: str) -> Callable[[], httpx.Response]:
                return lambda: http.post("/token", data=CC, headers=basic(client_id, value))

            def assertion(signer: Key, iss: Callable[[], str]) -> Callable[[], httpx.Response]:
                def send() -> httpx.Response:
                    form = {
                        **CC,
                        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": client_assertion(signer, iss(), server.url),
                    }
                    return http.post("/token", data=form)

                return send

            kinds: dict[str, Callable[[], httpx.Response]] = {
                "secret, known id, wrong secret": secret("broker", SECRET + "x"),
                "secret, unknown id": lambda: secret(f"nobody-{secrets.token_hex(4)}", SECRET)(),
                "secret, id of a private_key_jwt client": secret("svc", SECRET),
                "secret, known id, right secret (HMAC memo)": secret("broker", SECRET),
                "assertion, known iss, forged signature": assertion(forger, lambda: "svc"),
                "assertion, unknown iss": assertion(forger, lambda: f"nobody-{secrets.token_hex(4)}"),
            }
            times: dict[str, list[float]] = {name: [] for name in kinds}
            for _ in range(rounds):
                for name, send in kinds.items():
                    start = time.perf_counter()
                    reply = send()
                    times[name].append(time.perf_counter() - start)
                    expected = 200 if "right" in name else 401
                    assert reply.status_code == expected, (name, reply.text)
    print(machine_note())
    print(f"{rounds} interleaved rounds, one keep-alive connection, portcullis serve on SQLite")
    medians = {}
    for name, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        medians[name] = statistics.median(values)
        print(
            f"  {name:45s} median {medians[name] * 1000:6.1f} ms"
            f"  p10 {deciles[0] * 1000:6.1f}  p90 {deciles[-1] * 1000:6.1f}"
        )
    pairs = [
        ("secret, unknown id", "secret, known id, wrong secret"),
        ("secret, id of a private_key_jwt client", "secret, known id, wrong secret"),
        ("assertion, unknown iss", "assertion, known iss, forged signature"),
    ]
    for a, b in pairs:
        print(f"  ratio {a} / {b}: {medians[a] / medians[b]:.2f}")


if __name__ == "__main__":
    main()
