"""OpenID Connect RP-Initiated Logout 1.0, the pure checks: the ID token hint, client_id, exact
post_logout_redirect_uri matching and state (the HTTP face is tested in tests/http/)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from app.oauth.clients import ClientRegistry, parse_client
from app.oauth.logout import (
    IdTokenHint,
    LogoutRejected,
    LogoutRequest,
    check_id_token_hint,
    decide,
    parse_request,
    with_state,
)
from app.oidc import keys
from app.oidc.tokens import Grant, TokenPolicy, mint_access_token, mint_id_token

ISSUER = "https://auth.example.com"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = b"logout-test-secret-" + b"x" * 32
POLICY = TokenPolicy(ISSUER, ISSUER, timedelta(minutes=5), timedelta(minutes=5))
SIGNED_OUT = "https://dapp.example.com/signed-out"
WITH_QUERY = "https://dapp.example.com/bye?from=op"


def ring_at(now: datetime = NOW) -> keys.KeyRing:
    record, _ = keys.generate_key("ES256", SECRET, now)
    ring = keys.build_keyring([record], SECRET, now)
    assert ring is not None
    return ring


RING = ring_at()


def grant(client_id: str = "trading-dapp", session_id: str | None = "family-1") -> Grant:
    return Grant(
        address="0x" + "ab" * 20,
        chain_id=1,
        client_id=client_id,
        scope="openid",
        auth_time=NOW,
        session_id=session_id,
    )


def id_token(ring: keys.KeyRing = RING, policy: TokenPolicy = POLICY, **grant_args: Any) -> str:
    return mint_id_token(ring, policy, grant(**grant_args), NOW, access_token="at", oidc_nonce=None)


REGISTRY = ClientRegistry(
    [
        parse_client(
            {
                "client_id": "trading-dapp",
                "client_name": "Trading dApp",
                "redirect_uris": ["https://dapp.example.com/cb"],
                "post_logout_redirect_uris": [SIGNED_OUT, WITH_QUERY],
                "token_endpoint_auth_method": "none",
            }
        ),
        parse_client(
            {
                "client_id": "other-dapp",
                "redirect_uris": ["https://other.example.com/cb"],
                "post_logout_redirect_uris": ["https://other.example.com/bye"],
                "token_endpoint_auth_method": "none",
            }
        ),
    ]
)


# --- the ID token hint ------------------------------------------------------------------------------------


def test_a_hint_we_issued_names_client_subject_and_session() -> None:
    hint = check_id_token_hint(RING, ISSUER, id_token())
    assert hint == IdTokenHint("trading-dapp", f"did:pkh:eip155:1:0x{'ab' * 20}", "family-1")


def test_an_expired_hint_is_accepted() -> None:
    # Section 2: the OP SHOULD accept an ID token for logout even when its exp has passed. The check takes
    # no clock at all; PyJWT's own (wall-clock) expiry check must be off, which this token would fail.
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    old = mint_id_token(RING, POLICY, grant(), long_ago, access_token="at", oidc_nonce=None)
    assert jwt.decode(old, options={"verify_signature": False})["exp"] < time.time()
    assert check_id_token_hint(RING, ISSUER, old).session_id == "family-1"


def test_a_hint_without_sid_ends_nothing() -> None:
    assert check_id_token_hint(RING, ISSUER, id_token(session_id=None)).session_id is None


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    return signing_input + "." + b64url(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())


def tampered() -> str:
    head, payload, signature = id_token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sid"] = "someone-elses-session"
    return f"{head}.{b64url(json.dumps(claims).encode())}.{signature}"


def test_hints_we_did_not_issue_are_refused() -> None:
    kid = RING.active.kid
    claims = jwt.decode(id_token(), options={"verify_signature": False})
    public = json.dumps(RING.published[0]).encode()
    other_ring = ring_at()
    bad = {
        "garbage": "not-a-jwt",
        "tampered": tampered(),
        "alg none": forged({"alg": "none", "typ": "JWT", "kid": kid}, claims, None),
        "HS256 with the public key": forged({"alg": "HS256", "typ": "JWT", "kid": kid}, claims, public),
        "another server's key": id_token(ring=other_ring),
        "an access token": mint_access_token(RING, POLICY, grant(), NOW, "jti-1"),
        "another issuer": id_token(
            policy=TokenPolicy("https://evil.example", ISSUER, POLICY.access_ttl, POLICY.id_ttl)
        ),
    }
    for name, token in bad.items():
        with pytest.raises(LogoutRejected) as caught:
            check_id_token_hint(RING, ISSUER, token)
        assert caught.value.reason == "invalid_id_token_hint", name
        assert caught.value.status == 400
    # A token whose key has since left the JWKS (retired past its publish window) cannot be checked.
    after_rotation = ring_at()
    assert all(k["kid"] != kid for k in after_rotation.published)
    with pytest.raises(LogoutRejected):
        check_id_token_hint(after_rotation, ISSUER, id_token())


# --- client_id and post_logout_redirect_uri ----------------------------------------------------------------

HINT = IdTokenHint("trading-dapp", "did:pkh:eip155:1:0xab", "family-1")


def test_registered_uri_with_hint_redirects_with_state() -> None:
    decision = decide(LogoutRequest(post_logout_redirect_uri=SIGNED_OUT, state="s 1&x=<y>"), HINT, REGISTRY)
    assert decision.redirect_to == SIGNED_OUT + "?state=s+1%26x%3D%3Cy%3E"
    assert decision.session_id == "family-1" and decision.client_id == "trading-dapp"
    kept = decide(LogoutRequest(post_logout_redirect_uri=WITH_QUERY, state="abc"), HINT, REGISTRY)
    assert kept.redirect_to == WITH_QUERY + "&state=abc"
    bare = decide(LogoutRequest(post_logout_redirect_uri=SIGNED_OUT), HINT, REGISTRY)
    assert bare.redirect_to == SIGNED_OUT


def test_no_redirect_uri_no_redirect() -> None:
    decision = decide(LogoutRequest(state="ignored"), HINT, REGISTRY)
    assert decision.redirect_to is None and decision.return_to is None and decision.session_id == "family-1"


@pytest.mark.parametrize(
    "uri",
    [
        SIGNED_OUT + "/",
        SIGNED_OUT + "?x=1",
        SIGNED_OUT + "#frag",
        "https://dapp.example.com/Signed-Out",
        "https://DAPP.example.com/signed-out",
        "http://dapp.example.com/signed-out",
        "https://dapp.example.com:443/signed-out",
        "https://dapp.example.com/signed-out/../signed-out",
        "https://dapp.example.com/signed%2Dout",
        "https://dapp.example.com/bye",
        "https://dapp.example.com/bye?from=op&x=1",
        "https://dapp.example.com/bye?FROM=op",
        "https://other.example.com/bye",  # registered, but for another client
        "https://evil.example/signed-out",
        " " + SIGNED_OUT,
    ],
)
def test_only_an_exactly_registered_uri_is_accepted(uri: str) -> None:
    for hint, client_id in ((HINT, None), (HINT, "trading-dapp"), (None, "trading-dapp")):
        with pytest.raises(LogoutRejected) as caught:
            decide(LogoutRequest(client_id=client_id, post_logout_redirect_uri=uri), hint, REGISTRY)
        assert caught.value.reason == "unregistered_redirect_uri"


def test_client_id_must_match_the_hint() -> None:
    with pytest.raises(LogoutRejected) as caught:
        decide(LogoutRequest(client_id="other-dapp", post_logout_redirect_uri=SIGNED_OUT), HINT, REGISTRY)
    assert caught.value.reason == "client_mismatch"
    with pytest.raises(LogoutRejected):
        decide(LogoutRequest(client_id="other-dapp"), HINT, REGISTRY)
    same = decide(
        LogoutRequest(client_id="trading-dapp", post_logout_redirect_uri=SIGNED_OUT), HINT, REGISTRY
    )
    assert same.redirect_to == SIGNED_OUT


def test_without_a_hint_nothing_is_ended_and_nobody_redirected() -> None:
    # Section 3: without id_token_hint the OP MUST NOT redirect; a registered URI may be offered as a link.
    decision = decide(
        LogoutRequest(client_id="trading-dapp", post_logout_redirect_uri=SIGNED_OUT, state="st"),
        None,
        REGISTRY,
    )
    assert decision.redirect_to is None and decision.session_id is None
    assert decision.return_to == SIGNED_OUT + "?state=st"
    with pytest.raises(LogoutRejected, match="needs an id_token_hint or a client_id"):
        decide(LogoutRequest(post_logout_redirect_uri=SIGNED_OUT), None, REGISTRY)
    assert decide(LogoutRequest(), None, REGISTRY).session_id is None


def test_a_client_outside_the_registry_has_no_logout_uris() -> None:
    # The SIWE public clients (PORTCULLIS_CLIENTS) register no post_logout_redirect_uris: logout, no redirect.
    demo = IdTokenHint("portcullis-demo", "did:pkh:eip155:1:0xab", "family-2")
    assert decide(LogoutRequest(), demo, REGISTRY).session_id == "family-2"
    with pytest.raises(LogoutRejected):
        decide(LogoutRequest(post_logout_redirect_uri=SIGNED_OUT), demo, REGISTRY)


def test_parse_request() -> None:
    request = parse_request(
        {
            "id_token_hint": "t",
            "client_id": "",
            "state": "s",
            "ui_locales": "fr",
            "post_logout_redirect_uri": "u",
        }
    )
    assert request == LogoutRequest(
        id_token_hint="t", client_id=None, post_logout_redirect_uri="u", state="s"
    )
    with pytest.raises(LogoutRejected, match="state is longer"):
        parse_request({"state": "x" * 2049})
    with pytest.raises(LogoutRejected, match="id_token_hint is longer"):
        parse_request({"id_token_hint": "x" * 8193})


def test_with_state() -> None:
    assert with_state("https://a.example/p", None) == "https://a.example/p"
    assert with_state("https://a.example/p?q=1", "é") == "https://a.example/p?q=1&state=%C3%A9"
