"""POST /token grant_type=refresh_token: rotation, reuse detection, client binding, scope narrowing."""

from __future__ import annotations

from typing import Any

import jwt

from tests.conftest import Harness, make_settings, running_app, sign, siwe_text


async def sign_in(
    h: Harness, account: Any, client_id: str | None = None, scope: str | None = None
) -> dict[str, Any]:
    offer = (await h.client.post("/siwe/nonce", json={"client_id": client_id} if client_id else None)).json()
    message = siwe_text(offer, account.address, issued_at=h.clock.now())
    body: dict[str, Any] = {"message": message, "signature": sign(account, message)}
    if client_id:
        body["client_id"] = client_id
    if scope:
        body["scope"] = scope
    reply = await h.client.post("/siwe/verify", json=body)
    assert reply.status_code == 200, reply.text
    tokens: dict[str, Any] = reply.json()
    return tokens


async def refresh(h: Harness, token: str, client_id: str = "portcullis-demo", **extra: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id, **extra}
    return await h.client.post("/token", data=form)


async def test_rotation_issues_new_tokens(harness: Harness, wallet: Any) -> None:
    first = await sign_in(harness, wallet)
    harness.clock.advance(10)
    reply = await refresh(harness, first["refresh_token"])
    assert reply.status_code == 200, reply.text
    second = reply.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old = jwt.decode(first["access_token"], options={"verify_signature": False})
    new = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert new["sub"] == old["sub"] and new["auth_time"] == old["auth_time"] and new["iat"] == old["iat"] + 10
    assert (await refresh(harness, second["refresh_token"])).status_code == 200


async def test_reuse_revokes_the_family(harness: Harness, wallet: Any) -> None:
    first = await sign_in(harness, wallet)
    second = (await refresh(harness, first["refresh_token"])).json()
    reuse = await refresh(harness, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert "revoked" in reuse.json()["error_description"]
    # the legitimate successor died with the family
    after = await refresh(harness, second["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    assert "revoked" in after.json()["error_description"]
    # another sign-in's family is untouched
    other = await sign_in(harness, wallet)
    assert (await refresh(harness, other["refresh_token"])).status_code == 200


async def test_refresh_token_is_bound_to_its_client(
    tmp_path: Any, clock: Any, sqlite_url: str, wallet: Any
) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url, clients=["dapp-a", "dapp-b"])
    async with running_app(settings, clock) as h:
        tokens = await sign_in(h, wallet, client_id="dapp-a")
        stolen = await refresh(h, tokens["refresh_token"], client_id="dapp-b")
        assert stolen.status_code == 400 and "another client" in stolen.json()["error_description"]
        assert (await refresh(h, tokens["refresh_token"], client_id="dapp-a")).status_code == 200


async def test_expired_and_unknown(harness: Harness, wallet: Any) -> None:
    tokens = await sign_in(harness, wallet)
    unknown = await refresh(harness, "not-a-token")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    harness.clock.advance(harness.settings.refresh_token_ttl_seconds + 1)
    expired = await refresh(harness, tokens["refresh_token"])
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]


async def test_scope_may_narrow_but_not_widen(harness: Harness, wallet: Any) -> None:
    # the default policy grants profile to any wallet that is not sanctioned
    tokens = await sign_in(harness, wallet, scope="openid profile")
    assert tokens["scope"] == "openid profile"
    wider = await refresh(harness, tokens["refresh_token"], scope="openid perps:trade")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # the refused request rotated nothing: the same token still works
    narrow = await refresh(harness, tokens["refresh_token"], scope="openid")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "openid"
    # the family keeps the original grant
    again = await refresh(harness, narrow.json()["refresh_token"])
    assert again.json()["scope"] == "openid profile"


async def test_token_request_errors(harness: Harness) -> None:
    c = harness.client
    r = await c.post("/token", data={"grant_type": "password", "username": "x"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = await c.post("/token", data={})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await c.post("/token", json={"grant_type": "refresh_token"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await c.post(
        "/token",
        content=b"grant_type=refresh_token&grant_type=refresh_token",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400 and "more than once" in r.json()["error_description"]
    r = await c.post("/token", data={"grant_type": "refresh_token"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await c.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nobody"}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await c.get("/token")
    assert r.status_code == 405
