"""OpenID Connect Discovery once, the JWKS cached as its Cache-Control says, an unknown kid refetched at
most once a minute, and a key rotated on the running Portcullis picked up without a restart."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import jwt
import pytest
from conftest import PROFESSIONAL, sign_in, validator_for
from portcullis_resource import InvalidToken
from portcullis_resource.jwks import cache_seconds

from app.audit.events import RequestMeta
from app.bootstrap import key_activation
from app.oidc import keys
from tests.conftest import TEST_SECRET, Harness


async def rotate_now(h: Harness) -> str:
    """`portcullis keys rotate` with no lead: the new key signs at once (the worst case for a cache)."""
    p = h.app.state.provider
    describe = key_activation(p.auditor, RequestMeta(operator="test"), "sdk rotation test")
    timing = keys.Timing(timedelta(0), p.key_timing.publish_window)
    new = await keys.rotate(p.key_store, TEST_SECRET.encode(), "ES256", h.clock.now(), timing, describe)
    p.keys.schedule = keys.load_schedule(await p.key_store.list_keys(), TEST_SECRET.encode(), h.clock.now())
    return new.kid


def with_kid(h: Harness, token: str, kid: str) -> str:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    key = h.app.state.provider.keys.ring.active
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


async def test_rotation_is_picked_up_and_random_kids_do_not_flood(server: Harness) -> None:
    v = validator_for(server)
    before = await sign_in(server, PROFESSIONAL)
    await v.validate_token(before["access_token"])
    assert v.keys.fetches == 1
    server.clock.advance(61)
    new_kid = await rotate_now(server)
    after = await sign_in(server, PROFESSIONAL)
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    token = await v.validate_token(after["access_token"])  # unknown kid: one refetch finds it
    assert token.subject.endswith(PROFESSIONAL.address) and v.keys.fetches == 2
    await v.validate_token(before["access_token"])  # the old key is still published
    # a flood of random kids within the minute costs no request
    for _ in range(50):
        with pytest.raises(InvalidToken, match="not signed by a key"):
            await v.validate_token(with_kid(server, after["access_token"], secrets.token_hex(8)))
    assert v.keys.fetches == 2
    server.clock.advance(61)  # a minute later, one more refetch is allowed, and only one
    for _ in range(10):
        with pytest.raises(InvalidToken):
            await v.validate_token(with_kid(server, after["access_token"], secrets.token_hex(8)))
    assert v.keys.fetches == 3
    assert v.keys.metadata is not None  # discovery was fetched once and kept


async def test_the_jwks_is_kept_for_its_max_age(server: Harness) -> None:
    v = validator_for(server)
    tokens = await sign_in(server, PROFESSIONAL)
    await v.validate_token(tokens["access_token"])
    max_age = server.settings.jwks_max_age_seconds
    server.clock.advance(max_age - 1)
    await v.validate_token((await sign_in(server, PROFESSIONAL))["access_token"])
    assert v.keys.fetches == 1
    server.clock.advance(2)
    await v.validate_token((await sign_in(server, PROFESSIONAL))["access_token"])
    assert v.keys.fetches == 2


def test_cache_control_parsing() -> None:
    assert cache_seconds("max-age=300", 1) == 300
    assert cache_seconds("public, max-age=60, must-revalidate", 1) == 60
    assert cache_seconds("no-store", 300) == 0
    assert cache_seconds(None, 300) == 300
    assert cache_seconds("private", 300) == 300
