"""Which key signs and which are published, decided from stored activation times and a (fake) clock
(OpenID Connect Core 10.1.1: a key is in the JWKS before it signs; RFC 7517 key sets)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.oidc import keys
from app.storage.records import AuditRecord, KeyRecord
from tests.conftest import FakeClock

SECRET = b"s" * 40
LEAD = keys.activation_lead(timedelta(seconds=300), timedelta(seconds=30))
WINDOW = keys.publish_window(timedelta(minutes=15))
TIMING = keys.Timing(LEAD, WINDOW)


class MemoryKeys:
    """A second KeyStore (a fake, in memory) with the SQL store's retire-then-insert rule."""

    def __init__(self) -> None:
        self.rows: list[KeyRecord] = []

    async def list_keys(self) -> list[KeyRecord]:
        return sorted(self.rows, key=lambda r: r.created_at)

    async def activate_key(
        self, key: KeyRecord, at: datetime, publish_until: datetime, audit: AuditRecord
    ) -> None:
        self.rows = [
            replace(r, retired_at=at, publish_until=publish_until) if r.retired_at is None else r
            for r in self.rows
        ]
        self.rows.append(key)


def _describe(kid: str) -> AuditRecord:
    return AuditRecord(ts="", type="key.activated", outcome="success", node="test", kid=kid)


async def _ring_at(store: MemoryKeys, when: datetime) -> keys.KeyRing:
    schedule = keys.load_schedule(await store.list_keys(), SECRET, when)
    assert schedule is not None
    return schedule.at(when)


def test_lead_is_one_cache_lifetime_plus_one_reload() -> None:
    assert timedelta(seconds=300 + 30) + keys.ACTIVATION_SLACK == LEAD


async def test_first_key_signs_at_once(clock: FakeClock) -> None:
    store = MemoryKeys()
    schedule = await keys.load_or_create(store, SECRET, "ES256", clock.now(), TIMING, _describe)
    ring = schedule.at(clock.now())
    assert [k["kid"] for k in ring.published] == [ring.active.kid]


async def test_rotated_key_is_published_a_lead_before_it_signs(clock: FakeClock) -> None:
    store = MemoryKeys()
    first = (await keys.load_or_create(store, SECRET, "ES256", clock.now(), TIMING, _describe)).at(
        clock.now()
    )
    old = first.active.kid
    rotated_at = clock.now()
    new = await keys.rotate(store, SECRET, "ES256", rotated_at, TIMING, _describe)
    assert new.activates_at == rotated_at + LEAD
    # a replica that loaded the table once, right after the rotation, and never again
    schedule = keys.load_schedule(await store.list_keys(), SECRET, clock.now())
    assert schedule is not None
    for offset in (timedelta(0), LEAD - timedelta(microseconds=1)):
        ring = schedule.at(rotated_at + offset)
        assert ring.active.kid == old
        assert {k["kid"] for k in ring.published} == {old, new.kid}
    ring = schedule.at(rotated_at + LEAD)
    assert ring.active.kid == new.kid and [k["kid"] for k in ring.published] == [new.kid, old]
    # the old key stays published until every token it signed (up to the switch) has expired
    assert schedule.at(rotated_at + LEAD + WINDOW - timedelta(seconds=1)).published[1]["kid"] == old
    assert [k["kid"] for k in schedule.at(rotated_at + LEAD + WINDOW).published] == [new.kid]
    records = await store.list_keys()
    states = {r.kid: keys.key_state(r, records, rotated_at + LEAD + WINDOW) for r in records}
    assert states == {old: "expired", new.kid: "signing"}


async def test_two_rotations_in_a_row(clock: FakeClock) -> None:
    """A second rotation before the first activates: each key signs from its own activation time."""
    store = MemoryKeys()
    a = (await keys.load_or_create(store, SECRET, "ES256", clock.now(), TIMING, _describe)).at(clock.now())
    t0 = clock.now()
    b = await keys.rotate(store, SECRET, "ES256", t0, TIMING, _describe)
    c = await keys.rotate(store, SECRET, "ES256", t0 + timedelta(seconds=10), TIMING, _describe)
    records = await store.list_keys()
    at = {
        "before": t0 + timedelta(seconds=11),
        "b": t0 + LEAD,
        "c": t0 + timedelta(seconds=10) + LEAD,
    }
    assert [keys.key_state(r, records, at["before"]) for r in records] == ["signing", "next", "next"]
    assert [keys.key_state(r, records, at["b"]) for r in records] == ["retired-published", "signing", "next"]
    assert [keys.key_state(r, records, at["c"]) for r in records] == [
        "retired-published",
        "retired-published",
        "signing",
    ]
    assert (await _ring_at(store, at["b"])).active.kid == b.kid
    assert (await _ring_at(store, at["c"])).active.kid == c.kid
    assert a.active.kid not in {b.kid, c.kid}


async def test_a_new_algorithm_is_rotated_to_with_the_lead(clock: FakeClock) -> None:
    store = MemoryKeys()
    await keys.load_or_create(store, SECRET, "ES256", clock.now(), TIMING, _describe)
    schedule = await keys.load_or_create(store, SECRET, "EdDSA", clock.now(), TIMING, _describe)
    assert schedule.at(clock.now()).active.alg == "ES256"
    assert schedule.at(clock.now() + LEAD).active.alg == "EdDSA"
    # a restart while the EdDSA key is pending does not rotate again
    again = await keys.load_or_create(store, SECRET, "EdDSA", clock.now(), TIMING, _describe)
    assert len(again.records) == 2


def test_rows_from_before_activation_times_sign_from_creation() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    old, _ = keys.generate_key("ES256", SECRET, t)
    newer, _ = keys.generate_key("ES256", SECRET, t + timedelta(days=1))
    old = replace(old, retired_at=t + timedelta(days=1), publish_until=t + timedelta(days=2))
    assert keys.signing_record([old, newer], t + timedelta(days=1)) == newer
    assert keys.signing_record([old, newer], t + timedelta(hours=1)) == old


def test_a_clock_behind_the_first_key_still_signs_with_it() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    first, _ = keys.generate_key("ES256", SECRET, t)
    assert keys.signing_record([replace(first, activates_at=t)], t - timedelta(seconds=1)) is not None


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_schedule_publishes_public_halves_only(alg: str) -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    record, _ = keys.generate_key(alg, SECRET, t)
    ring = keys.build_keyring([record], SECRET, t)
    assert ring is not None and all("d" not in k for k in ring.published)
