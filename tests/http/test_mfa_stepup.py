"""Second factors through the HTTP API and RFC 9470 step-up at /siwe/verify: TOTP and a software passkey
enrolled with a fresh wallet session, then required with acr_values; replays and counter regressions
refused; refreshed tokens keep the session's acr and amr."""

from __future__ import annotations

from typing import Any

import jwt
import pyotp

from tests.conftest import Harness, sign, siwe_text
from tests.mfa.authenticator import SoftwareAuthenticator

MFA = "urn:portcullis:acr:wallet+mfa"
ORIGIN = "http://127.0.0.1:8000"


async def sign_in(h: Harness, wallet: Any, **extra: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce")).json()
    message = siwe_text(offer, wallet.address, issued_at=h.clock.now())
    return await h.client.post(
        "/siwe/verify", json={"message": message, "signature": sign(wallet, message), **extra}
    )


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_totp_enrol_then_step_up(harness: Harness, wallet: Any) -> None:
    h = harness
    tokens = (await sign_in(h, wallet)).json()
    assert claims(tokens["access_token"])["acr"] == "urn:portcullis:acr:wallet"
    enrolment = await h.client.post("/mfa/totp", headers=bearer(tokens))
    assert enrolment.status_code == 201, enrolment.text
    body = enrolment.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(body["secret"])
    confirm = await h.client.post(
        "/mfa/totp/confirm",
        json={"factor_id": body["factor_id"], "code": totp.at(h.clock.now())},
        headers=bearer(tokens),
    )
    assert confirm.status_code == 200 and confirm.json()["confirmed"], confirm.text

    # asking for wallet+mfa without a factor: RFC 9470, nothing issued
    weak = await sign_in(h, wallet, acr_values=MFA)
    assert weak.status_code == 401 and weak.json()["error"] == "insufficient_user_authentication"
    assert weak.json()["acr_values"] == MFA and "access_token" not in weak.text
    assert 'error="insufficient_user_authentication"' in weak.headers["www-authenticate"]

    h.clock.advance(30)  # the confirming code's step is spent; take the next one
    code = totp.at(h.clock.now())
    strong = await sign_in(h, wallet, acr_values=MFA, second_factor={"type": "totp", "code": code})
    assert strong.status_code == 200, strong.text
    access = claims(strong.json()["access_token"])
    assert access["acr"] == MFA and set(access["amr"]) >= {"siwe", "otp", "mfa"}
    id_claims = claims(strong.json()["id_token"])
    assert id_claims["acr"] == MFA

    replay = await sign_in(h, wallet, second_factor={"type": "totp", "code": code})
    assert replay.status_code == 401 and "access_token" not in replay.text

    form = {
        "grant_type": "refresh_token",
        "refresh_token": strong.json()["refresh_token"],
        "client_id": "portcullis-demo",
    }
    refreshed = await h.client.post("/token", data=form)
    assert claims(refreshed.json()["access_token"])["acr"] == MFA


async def test_enrolment_needs_a_recent_sign_in(harness: Harness, wallet: Any) -> None:
    h = harness
    tokens = (await sign_in(h, wallet)).json()
    h.clock.advance(302)  # the token is still valid, the authentication no longer recent (5 minutes)
    stale = await h.client.post("/mfa/totp", headers=bearer(tokens))
    assert stale.status_code == 401 and stale.json()["error"] == "insufficient_user_authentication"
    assert (await h.client.post("/mfa/totp")).status_code == 401


async def test_passkey_enrol_then_step_up(harness: Harness, wallet: Any) -> None:
    h = harness
    tokens = (await sign_in(h, wallet)).json()
    options = (await h.client.post("/mfa/webauthn/registration", headers=bearer(tokens))).json()
    authenticator = SoftwareAuthenticator()
    credential = authenticator.create(options, ORIGIN)
    done = await h.client.post(
        "/mfa/webauthn/registration/finish", json={"credential": credential}, headers=bearer(tokens)
    )
    assert done.status_code == 201, done.text

    subject = f"did:pkh:eip155:1:{wallet.address}"
    challenge = (await h.client.post("/mfa/webauthn/assertion", json={"subject": subject})).json()
    assertion = authenticator.get(challenge, ORIGIN)
    strong = await sign_in(
        h, wallet, acr_values=MFA, second_factor={"type": "webauthn", "credential": assertion}
    )
    assert strong.status_code == 200, strong.text
    assert set(claims(strong.json()["access_token"])["amr"]) >= {"siwe", "hwk", "mfa"}

    # an old counter value (a cloned authenticator) is refused
    challenge = (await h.client.post("/mfa/webauthn/assertion", json={"subject": subject})).json()
    cloned = authenticator.get(challenge, ORIGIN, counter=1)
    refused = await sign_in(h, wallet, second_factor={"type": "webauthn", "credential": cloned})
    assert refused.status_code == 401 and "access_token" not in refused.text


async def test_bad_second_factor_shapes(harness: Harness, wallet: Any) -> None:
    for factor in ({"type": "sms"}, "123456", {"type": "totp"}, {"type": "webauthn", "credential": 5}):
        reply = await sign_in(harness, wallet, second_factor=factor)
        assert reply.status_code == 400 and reply.json()["error"] == "invalid_request", factor
    reply = await sign_in(harness, wallet, max_age=-1)
    assert reply.status_code == 400
