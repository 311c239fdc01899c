"""RateLimiter: which keys a check charges, the 429 it raises, nonce flooding, and the default table."""

from __future__ import annotations

import asyncio

import pytest

from app.http.errors import error_response
from app.risk.errors import RateLimited
from app.risk.gcra import Limit
from app.risk.limits import DEFAULT_LIMITS, OUTSTANDING_NONCES, RateLimiter
from app.risk.memory import MemoryBackend
from tests.conftest import FakeClock

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b2" * 20

LIMITS = {
    limit.name: limit
    for limit in (
        Limit("verify:ip", rate=30, per_seconds=60, burst=3),
        Limit("verify:address", rate=60, per_seconds=60, burst=5),
        Limit("verify:client", rate=600, per_seconds=60, burst=8),
        Limit("verify:global", rate=6000, per_seconds=60, burst=12),
        Limit("nonce:ip", rate=120, per_seconds=60, burst=30),
        Limit(OUTSTANDING_NONCES, rate=6, per_seconds=600, burst=4),
    )
}


def limiter(clock: FakeClock, limits: dict[str, Limit] | None = None) -> RateLimiter:
    return RateLimiter(MemoryBackend(), limits or LIMITS, clock)


async def allowed(
    rl: RateLimiter,
    endpoint: str,
    n: int,
    *,
    ip: str | None,
    address: str | None = None,
    client_id: str | None = None,
) -> int:
    """How many of ``n`` requests in a row get through."""
    ok = 0
    for _ in range(n):
        try:
            await rl.check(endpoint, ip=ip, address=address, client_id=client_id)
            ok += 1
        except RateLimited:
            pass
    return ok


async def test_per_ip_budget_is_separate_per_ip(clock: FakeClock) -> None:
    rl = limiter(clock)
    assert await allowed(rl, "verify", 10, ip="198.51.100.1") == 3
    assert await allowed(rl, "verify", 10, ip="198.51.100.2") == 3


async def test_ipv6_clients_share_their_slash_64(clock: FakeClock) -> None:
    rl = limiter(clock)
    assert await allowed(rl, "verify", 2, ip="2001:db8:1:2::1") == 2
    assert await allowed(rl, "verify", 5, ip="2001:db8:1:2:ffff::9") == 1  # same /64, same budget
    assert await allowed(rl, "verify", 5, ip="2001:db8:1:3::1") == 3
    assert await allowed(rl, "verify", 5, ip="::ffff:198.51.100.7") == 3
    assert await allowed(rl, "verify", 5, ip="198.51.100.7") == 0  # IPv4-mapped is the IPv4 address


async def test_unknown_ip_is_one_shared_budget_not_none(clock: FakeClock) -> None:
    rl = limiter(clock)
    assert await allowed(rl, "verify", 10, ip=None) == 3


async def test_per_address_budget_spans_ips_and_ignores_case(clock: FakeClock) -> None:
    rl = limiter(clock)
    ips = [f"198.51.100.{i}" for i in range(10)]
    checksummed = "0x" + ALICE[2:].upper()  # EIP-55 mixed case names the same account
    results = [
        await allowed(rl, "verify", 1, ip=ip, address=(ALICE, checksummed)[i % 2]) for i, ip in enumerate(ips)
    ]
    assert sum(results) == 5
    assert await allowed(rl, "verify", 1, ip="203.0.113.1", address=BOB) == 1


async def test_per_client_and_global_budgets(clock: FakeClock) -> None:
    rl = limiter(clock)
    granted = [await allowed(rl, "verify", 1, ip=f"198.51.100.{i}", client_id="dapp-a") for i in range(10)]
    assert sum(granted) == 8
    # another client still has its own budget, up to the global one (12 in all)
    granted = [await allowed(rl, "verify", 1, ip=f"203.0.113.{i}", client_id="dapp-b") for i in range(10)]
    assert sum(granted) == 4
    with pytest.raises(RateLimited, match="too many requests") as refused:
        await rl.check("verify", ip="192.0.2.1")
    assert refused.value.debug == "limited by verify:global"


async def test_refused_request_spends_nothing_anywhere(clock: FakeClock) -> None:
    rl = limiter(clock)
    assert await allowed(rl, "verify", 50, ip="198.51.100.1") == 3
    # 47 refusals from one IP did not touch the global budget: 9 others still get in
    granted = [await allowed(rl, "verify", 1, ip=f"203.0.113.{i}") for i in range(9)]
    assert sum(granted) == 9


async def test_retry_after_is_the_longest_wait_and_renders_as_429(clock: FakeClock) -> None:
    rl = limiter(clock)
    for i in range(3):
        await rl.check("verify", ip="198.51.100.1", address=ALICE)
    with pytest.raises(RateLimited) as refused:
        await rl.check("verify", ip="198.51.100.1", address=ALICE)
    assert refused.value.retry_after == pytest.approx(2.0)  # one request per 2 s on verify:ip
    clock.advance(1.5)
    with pytest.raises(RateLimited) as refused:
        await rl.check("verify", ip="198.51.100.1", address=ALICE)
    assert refused.value.retry_after == pytest.approx(0.5)
    reply = error_response(refused.value)
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "1"  # whole seconds, rounded up, at least 1
    assert b'"error":"rate_limited"' in reply.body
    clock.advance(0.5)
    await rl.check("verify", ip="198.51.100.1", address=ALICE)


async def test_retry_after_header_rounds_up() -> None:
    for wait, header in [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")]:
        assert RateLimited("x", retry_after=wait).headers() == {"Retry-After": header}


async def test_a_burst_of_hundreds_from_one_ip_is_cut_to_the_burst(clock: FakeClock) -> None:
    rl = RateLimiter(MemoryBackend(), DEFAULT_LIMITS, clock)
    for endpoint in ("nonce", "verify", "token", "mfa", "register", "bot"):
        results = await asyncio.gather(
            *(rl.check(endpoint, ip="198.51.100.66", address=ALICE, client_id="dapp") for _ in range(500)),
            return_exceptions=True,
        )
        ok = sum(not isinstance(r, BaseException) for r in results)
        ip_burst = DEFAULT_LIMITS[f"{endpoint}:ip"].burst
        assert 1 <= ok <= ip_burst, endpoint
        assert all(isinstance(r, RateLimited) for r in results if isinstance(r, BaseException))


async def test_normal_use_never_meets_the_defaults(clock: FakeClock) -> None:
    """A person signing in, refreshing and doing MFA at a brisk human pace for an hour."""
    rl = RateLimiter(MemoryBackend(), DEFAULT_LIMITS, clock)
    for _ in range(60):
        for _ in range(3):  # three sign-ins a minute, e.g. several tabs and a retry
            await rl.check("nonce", ip="198.51.100.5", client_id="dapp")
            await rl.check("verify", ip="198.51.100.5", address=ALICE, client_id="dapp")
            await rl.redeem_nonce(ip="198.51.100.5")
        await rl.check("mfa", ip="198.51.100.5", address=ALICE, client_id="dapp")
        for _ in range(4):
            await rl.check("token", ip="198.51.100.5", address=ALICE, client_id="dapp")
        clock.advance(60)
    await rl.check("register", ip="198.51.100.5", address=ALICE, client_id="dapp")


async def test_unused_nonces_count_against_the_issuing_ip(clock: FakeClock) -> None:
    rl = limiter(clock)
    flooder, user = "198.51.100.13", "198.51.100.14"
    # the flooder asks for nonces and never uses them: four outstanding, then refused
    assert await allowed(rl, "nonce", 10, ip=flooder) == 4
    with pytest.raises(RateLimited) as refused:
        await rl.check("nonce", ip=flooder)
    assert refused.value.debug == f"limited by {OUTSTANDING_NONCES}"
    assert refused.value.retry_after == pytest.approx(100.0)  # one nonce per 600/6 s comes back
    # a user who signs in with each nonce is paid back every time and never runs out
    for _ in range(20):
        await rl.check("nonce", ip=user)
        await rl.redeem_nonce(ip=user)
    # paying back never banks budget beyond the burst
    for _ in range(10):
        await rl.redeem_nonce(ip=user)
    assert await allowed(rl, "nonce", 10, ip=user) == 4


async def test_configuration_errors_are_loud(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="filed under"):
        RateLimiter(MemoryBackend(), {"verify:ip": Limit("verify:address", 1, 1, 1)}, clock)
    with pytest.raises(ValueError, match="is not"):
        RateLimiter(MemoryBackend(), {"verify:cidr": Limit("verify:cidr", 1, 1, 1)}, clock)
    with pytest.raises(ValueError, match="no rate limits"):
        await limiter(clock).check("verfiy", ip="198.51.100.1")


def test_default_table_covers_every_endpoint_and_dimension() -> None:
    for endpoint in ("nonce", "verify", "token", "mfa", "register", "bot"):
        for dimension in ("ip", "client", "global"):
            assert f"{endpoint}:{dimension}" in DEFAULT_LIMITS
    for name, limit in DEFAULT_LIMITS.items():
        assert name == limit.name
        if name.endswith(":ip"):
            assert limit.burst <= 60 and limit.rate / limit.per_seconds <= 5  # per second, sustained
    with pytest.raises(TypeError):
        DEFAULT_LIMITS["nonce:ip"] = Limit("nonce:ip", 1, 1, 1)  # type: ignore[index]
