"""EIP-4361 verify throughput: Portcullis against siwe-py and against bare secp256k1 recovery.

Run: ``.venv/bin/python bench/siwe_verify.py [--seconds N] [--rounds R]``

Four contenders verify the same EOA-signed message (fixed eth-account key, fixed clock):

1. ``app.siwe.verify`` (parse, every field check, EIP-191 recovery);
2. siwe-py ``SiweMessage.from_message(text)`` + ``.verify(signature, ...)``, default ABNF parser;
3. the same with ``abnf=False`` (siwe-py's regex parser);
4. bare ``coincurve.PublicKey.from_signature_and_message`` of the precomputed hash: the floor.

siwe-py runs with no provider, so it takes its offline EOA path; the warm-up proves it by
refusing any socket connection. Each contender is timed in R interleaved rounds of N/R seconds
(perf_counter loops after a warm-up) and the best round is reported: on a shared machine the
least-disturbed round is the best estimate of the code's own cost. The ratio to bare recovery is also
given per round (the two timed back to back), median and range. Targets: ours >= 10x siwe-py
(default parser) and >= 70% of the bare recovery rate.

That ratio depends on the machine's load, not only on the code: other processes on the same cores cost
the interpreter's memory-heavy work more than libsecp256k1's arithmetic. With app/siwe unchanged it read
70 % on a quiet machine and 54-60 % with other work on both cores; callgrind counts the instructions
(load-independent) at 0.71 (docs/PERFORMANCE.md). Read it next to the load average it prints.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Runnable as a plain script from the project root or from bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct

from app.siwe import Expectations, SiweMessage, verify
from app.siwe.keccak import keccak

KEY = bytes.fromhex("8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f")
NOW = datetime(2030, 1, 1, 0, 1, tzinfo=UTC)
TARGET_VS_SIWE_PY = 10.0
TARGET_VS_BARE = 0.70


def fixture() -> tuple[str, str, Expectations]:
    """A realistic sign-in message, its 0x-hex signature, and the server's expectations."""
    account = Account.from_key(KEY)
    message = SiweMessage(
        scheme="https",
        domain="login.portcullis.example",
        address=account.address,
        statement="Sign in to Portcullis to trade perpetuals. This request will not trigger a transaction.",
        uri="https://login.portcullis.example/siwe",
        version="1",
        chain_id=1,
        nonce="Xk3v9QpL2mN8rT5w",
        issued_at="2030-01-01T00:00:00.000Z",
        expiration_time="2030-01-01T00:10:00.000Z",
        request_id="5f0c8e2a-7c1b-4b9e-9f00-3d2a1c4b5e6f",
        resources=("https://login.portcullis.example/terms",),
    )
    text = message.to_text()
    signature = account.sign_message(encode_defunct(text=text)).signature.hex()
    signature = signature if signature.startswith("0x") else "0x" + signature
    expect = Expectations(
        domain="login.portcullis.example",
        scheme="https",
        uri="https://login.portcullis.example/siwe",
        chain_ids=frozenset({1}),
        nonce="Xk3v9QpL2mN8rT5w",
        max_age=timedelta(minutes=5),
    )
    return text, signature, expect


@contextmanager
def no_network() -> Iterator[None]:
    """Fail loudly if anything opens a network connection inside the block."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("network access attempted")

    original = socket.socket.connect
    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def contenders(
    text: str, signature: str, expect: Expectations
) -> tuple[dict[str, Callable[[], object]], list[str]]:
    notes: list[str] = []
    raw = bytes.fromhex(signature[2:])
    recoverable = raw[:64] + bytes((raw[64] - 27,))
    digest = bytes(defunct_hash_message(text=text))

    def ours() -> SiweMessage:
        return verify(text, signature, expect=expect, now=NOW)

    def bare_key() -> PublicKey:
        return PublicKey.from_signature_and_message(recoverable, digest, hasher=None)

    runs: dict[str, Callable[[], object]] = {"portcullis verify": ours}
    try:
        import siwe
    except ImportError:
        notes.append("siwe-py is not installed: its rows are skipped")
    else:

        def siwe_py(abnf: bool) -> Callable[[], object]:
            def run() -> object:
                parsed = siwe.SiweMessage.from_message(text, abnf=abnf)
                parsed.verify(signature, domain=expect.domain, nonce=expect.nonce, timestamp=NOW)
                return parsed

            return run

        for label, abnf in (("siwe-py verify (ABNF parser)", True), ("siwe-py verify (regex parser)", False)):
            try:
                with no_network():
                    siwe_py(abnf)()
            except RuntimeError as exc:
                notes.append(f"{label}: needs the network ({exc}); cannot run offline, skipped")
                continue
            runs[label] = siwe_py(abnf)
        notes.append("siwe-py runs with provider=None: offline EOA recovery, checked with sockets refused")
    runs["bare coincurve recover (floor)"] = bare_key
    # Every contender must succeed before it is timed, and the floor must recover the signer.
    signer = keccak(bare_key().format(compressed=False)[1:])[-20:]
    assert signer == bytes.fromhex(ours().address[2:])
    return runs, notes


def rate(run: Callable[[], object], seconds: float) -> float:
    """Calls per second over about ``seconds`` of perf_counter-timed batches."""
    batch = 1
    calls = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for _ in range(batch):
            run()
        calls += batch
        elapsed = time.perf_counter() - start
        if elapsed < seconds / 20:
            batch *= 2
    return calls / elapsed


def machine_note() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    backend = "safe-pysha3 (app/siwe/keccak.py)"
    hashes_per_second = max(rate(lambda: keccak(bytes(64)), 0.1) for _ in range(5))
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("coincurve", "eth-hash", "pycryptodome", "siwe")
    )
    return (
        f"machine: {model}, {os.cpu_count()} CPUs, load average {load}\n"
        f"python:  {platform.python_implementation()} {platform.python_version()}; {packages}\n"
        f"keccak:  {backend}, {1e6 / hashes_per_second:.2f} us per "
        "64-byte hash; our verify makes 3 (EIP-191 digest, address from key, EIP-55 check)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per contender (default 3)")
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds; the best is kept (default 10)"
    )
    args = parser.parse_args()

    warnings.simplefilter("ignore")  # siwe-py's grammar and web3 emit deprecation chatter
    text, signature, expect = fixture()
    runs, notes = contenders(text, signature, expect)
    for run in runs.values():  # warm-up: caches, grammar objects, branch predictors
        rate(run, 0.2)
    best = dict.fromkeys(runs, 0.0)
    paired: list[float] = []  # ours / bare, timed back to back in each round
    for _ in range(args.rounds):
        round_rates = {label: rate(run, args.seconds / args.rounds) for label, run in runs.items()}
        for label, ops in round_rates.items():
            best[label] = max(best[label], ops)
        paired.append(round_rates["portcullis verify"] / round_rates["bare coincurve recover (floor)"])

    print("EIP-4361 verify benchmark (bench/siwe_verify.py)")
    print(machine_note())
    print(
        f"message: {len(text.encode())} bytes, EOA signature by eth-account; "
        f"best of {args.rounds} rounds x {args.seconds / args.rounds:.2f} s per contender"
    )
    for note in notes:
        print(f"note:    {note}")
    print()
    print(f"{'contender':34} {'ops/s':>10} {'us/op':>10}")
    for label, ops in best.items():
        print(f"{label:34} {ops:>10,.0f} {1e6 / ops:>10.1f}")
    print()
    ours = best["portcullis verify"]
    floor = best["bare coincurve recover (floor)"]
    rows: list[tuple[str, str, str]] = []
    abnf = best.get("siwe-py verify (ABNF parser)")
    regex = best.get("siwe-py verify (regex parser)")
    if abnf:
        verdict = "PASS" if ours / abnf >= TARGET_VS_SIWE_PY else "MISS"
        rows.append(
            (
                "ours / siwe-py (ABNF, default)",
                f"{ours / abnf:.1f}x",
                f">= {TARGET_VS_SIWE_PY:.0f}x  {verdict}",
            )
        )
    if regex:
        rows.append(("ours / siwe-py (regex)", f"{ours / regex:.1f}x", "(no target)"))
    verdict = "PASS" if ours / floor >= TARGET_VS_BARE else "MISS"
    rows.append(("ours / bare recover", f"{ours / floor:.1%}", f">= {TARGET_VS_BARE:.0%}  {verdict}"))
    paired.sort()
    rows.append(
        (
            "  per round, median (range)",
            f"{paired[len(paired) // 2]:.1%}",
            f"({paired[0]:.1%}-{paired[-1]:.1%}); load average now "
            + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        )
    )
    print(f"{'ratio':34} {'value':>10}   target")
    for name, value, target in rows:
        print(f"{name:34} {value:>10}   {target}")


if __name__ == "__main__":
    main()
