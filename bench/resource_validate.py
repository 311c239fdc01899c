"""Resource-server validation throughput: portcullis-resource against bare ES256 and PyJWT's jwt.decode.

Run: ``.venv/bin/python bench/resource_validate.py [--seconds N] [--rounds R]``

Contenders, all on one core, on the same ES256 access token signed as Portcullis signs it (a real
``app.oidc.tokens.mint_access_token`` with a real key ring):

1. ``Validator.validate_token`` (a): a Bearer RFC 9068 token, every check of docs/RESOURCE_SERVER.md;
2. ``Validator.authenticate`` (b): a DPoP-bound token with a fresh proof per call (two signatures, the
   ``jti`` recorded in the in-memory replay store);
3. bare ``cryptography`` ES256 verify of the token's signing input (DER signature precomputed): the floor;
4. PyJWT ``jwt.decode(token, key, algorithms=["ES256"], audience=..., issuer=...)`` with the key loaded
   once: what a backend writes by hand (fewer checks than 1).

The keys are served by an in-memory httpx transport (fetched once; the cache then answers). Each contender
runs in R interleaved passes of N/R seconds; the median and the range (min-max) of the passes are printed.
Targets: (a) >= 80 % of the bare verify rate, (b) >= 40 %, each ahead of its PyJWT baseline
(5. the token and the proof decoded with PyJWT, no replay store, for (b)).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm
from portcullis_resource import Validator
from portcullis_resource.jws import b64decode, b64encode

from app.oidc.keys import ActiveKey, KeyRing
from app.oidc.tokens import Grant, TokenPolicy, mint_access_token

ISSUER = "https://auth.example"
RS = "https://perps.example/orders"


def _ring() -> KeyRing:
    private = ec.generate_private_key(ec.SECP256R1())
    public: dict[str, Any] = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk = {**{k: public[k] for k in ("kty", "crv", "x", "y")}, "kid": "bench", "alg": "ES256", "use": "sig"}
    return KeyRing(active=ActiveKey(kid="bench", alg="ES256", private_key=private), published=(jwk,))


def _token(ring: KeyRing, now: datetime, jkt: str | None) -> str:
    policy = TokenPolicy(ISSUER, ISSUER, timedelta(minutes=15), timedelta(minutes=15))
    grant = Grant(
        address="0x" + "ab" * 20,
        chain_id=1,
        client_id="perps-dapp",
        scope="openid perps:trade",
        auth_time=now,
        compliance={"source": "registry", "chain_id": 1, "block": 1, "investor_class": "professional"},
        cnf_jkt=jkt,
        session_id="sid",
    )
    return mint_access_token(ring, policy, grant, now, jti=secrets.token_urlsafe(16))


def _transport(ring: KeyRing) -> httpx.MockTransport:
    meta = {
        "issuer": ISSUER,
        "jwks_uri": f"{ISSUER}/jwks",
        "id_token_signing_alg_values_supported": ["ES256"],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, json=ring.jwks(), headers={"Cache-Control": "max-age=86400"})
        return httpx.Response(200, json=meta)

    return httpx.MockTransport(answer)


def _proofs(key: ec.EllipticCurvePrivateKey, jwk: dict[str, str], token: str, iat: int, n: int) -> list[str]:
    ath = b64encode(hashlib.sha256(token.encode()).digest())
    head = {"typ": "dpop+jwt", "jwk": jwk}
    return [
        jwt.encode(
            {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": RS, "iat": iat, "ath": ath},
            key,
            "ES256",
            head,
        )
        for _ in range(n)
    ]


def _timed(call: Callable[[], Any], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            call()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


async def _timed_async(call: Callable[[], Awaitable[Any]], seconds: float, limit: int | None = None) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while limit is None or count + 100 <= limit:
        for _ in range(100):
            await call()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            break
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="total seconds per contender")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved passes")
    args = parser.parse_args()
    per_pass = args.seconds / args.rounds

    ring = _ring()
    now = datetime.now(UTC).replace(microsecond=0)
    epoch = now.timestamp()
    bearer = _token(ring, now, None)
    dpop_key = ec.generate_private_key(ec.SECP256R1())
    numbers = dpop_key.public_key().public_numbers()
    dpop_jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64encode(numbers.x.to_bytes(32, "big")),
        "y": b64encode(numbers.y.to_bytes(32, "big")),
    }
    jkt = b64encode(
        hashlib.sha256(json.dumps(dpop_jwk, sort_keys=True, separators=(",", ":")).encode()).digest()
    )
    bound = _token(ring, now, jkt)

    http = httpx.AsyncClient(transport=_transport(ring))
    validator = Validator(ISSUER, http=http, clock=lambda: epoch + 1)
    head, body, sig = bearer.split(".")
    raw = b64decode(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ring.active.private_key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    signing_input = f"{head}.{body}".encode()
    pyjwt_key = jwt.PyJWK(ring.published[0]).key

    def bare() -> None:
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))

    one_proof = _proofs(dpop_key, dpop_jwk, bound, int(epoch), 1)[0]

    def pyjwt_dpop() -> None:
        # What a hand-written DPoP check does at least: decode the token, then the proof under its own jwk.
        jwt.decode(bound, pyjwt_key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)
        header = jwt.get_unverified_header(one_proof)
        jwt.decode(one_proof, jwt.PyJWK(header["jwk"], "ES256").key, algorithms=["ES256"])

    def pyjwt() -> None:
        jwt.decode(bearer, pyjwt_key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)

    # Fresh proofs for each pass (each is single-use), signed before the pass starts.
    per_round = int(10_000 * per_pass)
    proofs = iter(_proofs(dpop_key, dpop_jwk, bound, int(epoch), 2))
    authorization = f"DPoP {bound}"

    async def sdk_bearer() -> None:
        await validator.validate_token(bearer)

    async def sdk_dpop() -> None:
        await validator.authenticate(
            method="POST", url=RS, authorization=authorization, dpop_proofs=(next(proofs),)
        )

    async def run() -> dict[str, list[float]]:
        await sdk_bearer()  # warm: discovery and JWKS fetched once
        await sdk_dpop()
        bare()
        pyjwt()
        rates: dict[str, list[float]] = {"a": [], "b": [], "bare": [], "pyjwt": [], "pyjwt_dpop": []}
        for _ in range(args.rounds):
            rates["bare"].append(_timed(bare, per_pass))
            rates["a"].append(await _timed_async(sdk_bearer, per_pass))
            rates["pyjwt"].append(_timed(pyjwt, per_pass))
            rates["pyjwt_dpop"].append(_timed(pyjwt_dpop, per_pass))
            nonlocal proofs
            proofs = iter(_proofs(dpop_key, dpop_jwk, bound, int(epoch), per_round))
            rates["b"].append(await _timed_async(sdk_dpop, per_pass, per_round))
        return rates

    rates = asyncio.run(run())
    med = {k: statistics.median(v) for k, v in rates.items()}
    labels = {
        "bare": "bare cryptography ES256 verify (floor)",
        "a": "(a) portcullis-resource, Bearer RFC 9068",
        "b": "(b) portcullis-resource, DPoP token + proof",
        "pyjwt": "PyJWT jwt.decode, token (baseline for a)",
        "pyjwt_dpop": "PyJWT jwt.decode, token + proof (for b)",
    }
    print(
        f"python {platform.python_version()}, {platform.machine()}, {args.rounds} passes of {per_pass:.2f} s"
    )
    print(f"{'contender':48} {'median/s':>10} {'range/s':>19} {'vs bare':>8}")
    for k in ("bare", "a", "b", "pyjwt", "pyjwt_dpop"):
        lo, hi = min(rates[k]), max(rates[k])
        print(f"{labels[k]:48} {med[k]:10.0f} {lo:9.0f}-{hi:<9.0f} {med[k] / med['bare']:7.0%}")
    print(f"(a) vs PyJWT: {med['a'] / med['pyjwt']:.2f}x   (b) vs PyJWT: {med['b'] / med['pyjwt_dpop']:.2f}x")
    print(
        f"targets: (a) >= 80% of bare: {'met' if med['a'] >= 0.8 * med['bare'] else 'NOT met'}; "
        f"(b) >= 40%: {'met' if med['b'] >= 0.4 * med['bare'] else 'NOT met'}; "
        f"both ahead of PyJWT: {'yes' if med['a'] > med['pyjwt'] and med['b'] > med['pyjwt_dpop'] else 'no'}"
    )


if __name__ == "__main__":
    main()
