"""GET and POST /logout (OpenID Connect RP-Initiated Logout 1.0) on the app in-process: the session the ID
token names ends (refresh refused, introspection inactive, audited), the End-User goes back only to an
exactly registered URI, and the pages are escaped, uncacheable and unframeable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import FakeClock, Harness, make_settings, running_app
from tests.http.test_rfc6749_refresh import refresh, sign_in
from tests.http.test_rfc7662_introspection import SECRET, introspect

DAPP = "trading-dapp"
SIGNED_OUT = "https://dapp.example.com/signed-out"
WITH_QUERY = "https://dapp.example.com/bye?from=op"
NAME = 'Trading <b>"dApp"</b> & co'


@pytest.fixture
async def h(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    clients = [
        {
            "client_id": DAPP,
            "client_name": NAME,
            "redirect_uris": ["https://dapp.example.com/cb"],
            "post_logout_redirect_uris": [SIGNED_OUT, WITH_QUERY],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
        {
            "client_id": "exchange-backend",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "client_secret": SECRET,
        },
    ]
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(clients))
    settings = make_settings(
        tmp_path, database_url=sqlite_url, clients_file=path, clients=["portcullis-demo", DAPP]
    )
    async with running_app(settings, FakeClock()) as harness:
        yield harness


async def logout(h: Harness, method: str = "GET", **params: str) -> Any:
    if method == "POST":
        return await h.client.post("/logout", data=params)
    return await h.client.get("/logout?" + urlencode(params))


async def session_alive(h: Harness, tokens: dict[str, Any]) -> bool:
    return bool((await introspect(h, tokens["access_token"])).json()["active"])


def assert_page_headers(reply: Any) -> None:
    csp = reply.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["referrer-policy"] == "no-referrer"


async def audit_entries(h: Harness, type_: str) -> list[dict[str, Any]]:
    return [e async for e in h.app.state.provider.audit_log.entries() if e["type"] == type_]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_logout_ends_the_session_and_redirects(h: Harness, wallet: Any, method: str) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    other = await sign_in(h, wallet, client_id=DAPP)  # another session of the same wallet
    assert await session_alive(h, tokens)
    reply = await logout(
        h, method, id_token_hint=tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT, state="st 1"
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == SIGNED_OUT + "?state=st+1"
    assert reply.headers["cache-control"] == "no-store"
    # The session is over: its refresh token is refused and its access token introspects inactive.
    refused = await refresh(h, tokens["refresh_token"], client_id=DAPP)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "revoked" in refused.json()["error_description"]
    assert (await introspect(h, tokens["access_token"])).json() == {"active": False}
    assert (await introspect(h, tokens["refresh_token"])).json() == {"active": False}
    assert await session_alive(h, other)  # only the named session
    [entry] = await audit_entries(h, "session.logged_out")
    assert entry["outcome"] == "success" and entry["client_id"] == DAPP
    assert entry["actor"] == f"did:pkh:eip155:1:{wallet.address}" and entry["session_hash"]
    assert entry["data"] == {"redirected": True}


async def test_registered_query_is_kept(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    reply = await logout(
        h, id_token_hint=tokens["id_token"], client_id=DAPP, post_logout_redirect_uri=WITH_QUERY, state="x"
    )
    assert reply.status_code == 303 and reply.headers["location"] == WITH_QUERY + "&state=x"


async def test_an_expired_id_token_still_logs_out(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    h.clock.advance(h.settings.id_token_ttl_seconds + 60)  # the ID token has expired, the session not
    assert (await introspect(h, tokens["refresh_token"])).json()["active"] is True
    reply = await logout(h, id_token_hint=tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT)
    assert reply.status_code == 303
    assert (await refresh(h, tokens["refresh_token"], client_id=DAPP)).status_code == 400


async def test_without_redirect_the_signed_out_page(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet)  # the public demo client: no registered logout URIs
    reply = await logout(h, id_token_hint=tokens["id_token"], ui_locales="fr-CA")
    assert reply.status_code == 200
    assert_page_headers(reply)
    assert "You are signed out" in reply.text and "has ended" in reply.text
    assert (await refresh(h, tokens["refresh_token"])).status_code == 400
    again = await logout(h, id_token_hint=tokens["id_token"])  # idempotent (section 4)
    assert again.status_code == 200


async def test_without_a_hint_nothing_is_revoked_and_nobody_redirected(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    bare = await logout(h)
    assert bare.status_code == 200 and "nothing here to end" in bare.text
    assert_page_headers(bare)
    linked = await logout(h, client_id=DAPP, post_logout_redirect_uri=SIGNED_OUT, state='"><script>')
    assert linked.status_code == 200 and "location" not in linked.headers
    assert '<a href="https://dapp.example.com/signed-out?state=%22%3E%3Cscript%3E">' in linked.text
    assert "Trading &lt;b&gt;&quot;dApp&quot;&lt;/b&gt; &amp; co" in linked.text and "<b>" not in linked.text
    assert await session_alive(h, tokens)
    assert (await refresh(h, tokens["refresh_token"], client_id=DAPP)).status_code == 200
    assert await audit_entries(h, "session.logged_out") == []


@pytest.mark.parametrize(
    "uri",
    [
        SIGNED_OUT + "/",
        SIGNED_OUT + "?x=1",
        "https://dapp.example.com/Signed-Out",
        "https://DAPP.example.com/signed-out",
        "http://dapp.example.com/signed-out",
        "https://dapp.example.com/bye",
        "https://evil.example/signed-out",
    ],
)
async def test_unregistered_uri_is_an_error_and_ends_nothing(h: Harness, wallet: Any, uri: str) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    reply = await logout(h, id_token_hint=tokens["id_token"], post_logout_redirect_uri=uri, state="s")
    assert reply.status_code == 400 and "location" not in reply.headers
    assert_page_headers(reply)
    assert "Sign-out failed" in reply.text and "not registered" in reply.text
    assert "evil.example" not in reply.text
    assert await session_alive(h, tokens)
    [entry] = await audit_entries(h, "session.logged_out")
    assert entry["outcome"] == "failure" and entry["reason"] == "unregistered_redirect_uri"


async def test_bad_hints_and_mismatched_client_are_errors(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    head, payload, signature = tokens["id_token"].split(".")
    cases = [
        ({"id_token_hint": f"{head}.{payload}.{signature[::-1]}"}, "id_token_hint"),
        ({"id_token_hint": tokens["access_token"]}, "not an ID token"),
        ({"id_token_hint": "junk"}, "not a JWT"),
        ({"id_token_hint": tokens["id_token"], "client_id": "portcullis-demo"}, "client_id does not match"),
    ]
    for params, why in cases:
        reply = await logout(h, post_logout_redirect_uri=SIGNED_OUT, **params)
        assert reply.status_code == 400 and why in reply.text, (params, reply.text)
        assert "location" not in reply.headers
    assert await session_alive(h, tokens)
    reasons = [e["reason"] for e in await audit_entries(h, "session.logged_out")]
    assert reasons == ["invalid_id_token_hint"] * 3 + ["client_mismatch"]


async def test_malformed_requests(h: Harness, wallet: Any) -> None:
    tokens = await sign_in(h, wallet, client_id=DAPP)
    hint = tokens["id_token"]
    repeated = await h.client.get(f"/logout?id_token_hint={hint}&id_token_hint={hint}")
    assert repeated.status_code == 400 and "more than once" in repeated.text
    assert_page_headers(repeated)
    json_body = await h.client.post("/logout", json={"id_token_hint": hint})
    assert json_body.status_code == 400 and "x-www-form-urlencoded" in json_body.text
    too_long = await logout(h, id_token_hint="x" * 9000)
    assert too_long.status_code == 400
    assert await session_alive(h, tokens)
