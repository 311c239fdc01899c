"""Signing keys: persisted across restarts, encrypted at rest, rotated with the old key kept published."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select

from app.audit.events import RequestMeta
from app.bootstrap import key_activation
from app.oidc import keys
from app.settings import load_settings
from app.storage.models import SigningKey
from tests.conftest import TEST_SECRET, FakeClock, make_settings, running_app
from tests.http.test_rfc6749_refresh import sign_in

TEST_SECRET_BYTES = TEST_SECRET.encode()


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 section 3.1 example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
            "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
            "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
            "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
    }
    assert keys.thumbprint(jwk, members=("e", "kty", "n")) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_encryption_roundtrip_and_wrong_secret(clock: FakeClock) -> None:
    record, private = keys.generate_key("ES256", b"s" * 40, clock.now())
    assert b"PRIVATE" not in record.private_key_encrypted
    again = keys.decrypt_private_key(record.private_key_encrypted, b"s" * 40, record.kid)
    assert again.private_numbers() == private.private_numbers()  # type: ignore[union-attr]
    with pytest.raises(keys.KeyDecryptionError, match="PORTCULLIS_SECRET_KEY"):
        keys.decrypt_private_key(record.private_key_encrypted, b"t" * 40, record.kid)


async def test_keys_survive_a_restart(tmp_path: Path, sqlite_url: str, clock: FakeClock) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url)
    async with running_app(settings, clock) as h:
        first = (await h.client.get("/jwks")).json()["keys"]
    async with running_app(settings, clock) as h:
        assert (await h.client.get("/jwks")).json()["keys"] == first


async def test_start_fails_clearly_with_another_secret(
    tmp_path: Path, sqlite_url: str, clock: FakeClock
) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), clock):
        pass
    other = make_settings(tmp_path, database_url=sqlite_url, secret_key="another-secret-" + "y" * 40)
    with pytest.raises(keys.KeyDecryptionError, match="cannot be decrypted"):
        async with running_app(other, clock):
            pass


async def test_rotation_publishes_first_signs_later_and_keeps_the_old_key(
    tmp_path: Path, sqlite_url: str, clock: FakeClock, wallet: Any
) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url)
    async with running_app(settings, clock) as h:
        p = h.app.state.provider
        old_kid = p.keys.ring.active.kid
        tokens = await sign_in(h, wallet)
        describe = key_activation(p.auditor, RequestMeta(operator="test"), "test rotation")
        new = await keys.rotate(p.key_store, TEST_SECRET_BYTES, "ES256", clock.now(), p.key_timing, describe)
        p.keys.schedule = keys.load_schedule(await p.key_store.list_keys(), TEST_SECRET_BYTES, clock.now())
        lead = p.key_timing.lead.total_seconds()
        assert lead == settings.jwks_max_age_seconds + settings.key_reload_seconds + 2
        # published at once, signing only after the lead: the old key goes on signing until then
        jwks = await h.client.get("/jwks")
        assert [k["kid"] for k in jwks.json()["keys"]] == [old_kid, new.kid]
        assert jwks.headers["cache-control"] == f"max-age={settings.jwks_max_age_seconds}"
        assert jwt.get_unverified_header((await sign_in(h, wallet))["access_token"])["kid"] == old_kid
        clock.advance(lead - 1)
        assert jwt.get_unverified_header((await sign_in(h, wallet))["access_token"])["kid"] == old_kid
        clock.advance(1)  # no reload needed: the replica switches by the stored time and its clock
        assert jwt.get_unverified_header((await sign_in(h, wallet))["access_token"])["kid"] == new.kid
        kids = [k["kid"] for k in (await h.client.get("/jwks")).json()["keys"]]
        assert kids == [new.kid, old_kid]
        # a token signed before the rotation still validates
        r = await h.client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert r.status_code == 200
        # once every token the old key signed has expired, it leaves the JWKS
        clock.advance(p.key_publish_window.total_seconds() + 1)
        assert [k["kid"] for k in (await h.client.get("/jwks")).json()["keys"]] == [new.kid]


def test_cli_rotate_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import json

    from app.cli.main import main

    monkeypatch.setenv("PORTCULLIS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTCULLIS_JWKS_MAX_AGE_SECONDS", "120")
    assert main(["keys", "list"]) == 0
    before = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(before) == 1 and before[0]["state"] == "signing"
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr()
    after = {k["kid"]: k for k in map(json.loads, out.out.splitlines())}
    assert len(after) == 2
    old = after.pop(before[0]["kid"])
    (new,) = after.values()
    assert old["state"] == "signing" and new["state"] == "next"
    # the old key retires when the new one starts signing and stays published its tokens' lifetime after
    assert old["published_until"] is not None and new["published_until"] is None
    starts = datetime.fromisoformat(new["activates_at"])
    created = datetime.fromisoformat(new["created_at"])
    assert (starts - created).total_seconds() == 120 + 30 + 2
    assert f"new key {new['kid']} is published now and starts signing at {new['activates_at']}" in out.err
    assert "(in 152 s" in out.err
    # the CLI used the development secret the server would use
    assert (tmp_path / "secret.key").exists()
    assert load_settings().data_dir == tmp_path


async def test_private_keys_are_not_stored_in_clear(
    tmp_path: Path, sqlite_url: str, clock: FakeClock
) -> None:
    async with running_app(make_settings(tmp_path, database_url=sqlite_url), clock) as h:
        engine = h.app.state.provider.store.engine
        async with engine.connect() as conn:
            blob = (await conn.execute(select(SigningKey.private_key_encrypted))).scalar_one()
        assert b"BEGIN" not in blob and len(blob) > 100
