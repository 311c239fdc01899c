"""Risk-based step-up at /siwe/verify, with the development chain's German professional (#2) signing in
from a documentation network the development geo table places in the US (198.51.100.0/24): new account
plus country mismatch crosses the step-up score; a stricter deny threshold refuses the sign-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pyotp

from tests.audit.tamper import rows
from tests.conftest import FakeClock, make_settings, running_app, sign, siwe_text
from tests.http.test_policy_signin import PROFESSIONAL

US_CLIENT = {"X-Forwarded-For": "198.51.100.7"}


def settings_for(tmp_path: Path, sqlite_url: str, **extra: Any) -> Any:
    return make_settings(
        tmp_path, database_url=sqlite_url, dev_chain=True, trusted_proxies=["127.0.0.0/8"], **extra
    )


async def sign_in(h: Any, headers: dict[str, str] | None = None, **extra: Any) -> Any:
    offer = (await h.client.post("/siwe/nonce", headers=headers)).json()
    message = siwe_text(offer, PROFESSIONAL.address, issued_at=h.clock.now())
    body = {"message": message, "signature": sign(PROFESSIONAL, message), **extra}
    return await h.client.post("/siwe/verify", json=body, headers=headers)


async def test_unusual_sign_in_steps_up_only_when_a_factor_exists(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(settings_for(tmp_path, sqlite_url), FakeClock()) as h:
        first = await sign_in(h, US_CLIENT, device_id="phone-1")
        assert first.status_code == 200, first.text  # no factor to step up with: allowed, and logged
        assert (
            jwt.decode(first.json()["access_token"], options={"verify_signature": False})["risk_level"]
            == "medium"
        )
        entry = [r for r in await rows(h.app.state.provider.store.engine) if r["type"] == "signin.succeeded"][
            -1
        ]
        assert '"action":"step_up"' in entry["data"] and "geo_mismatch" in entry["data"]

        tokens = first.json()
        enrol = (
            await h.client.post("/mfa/totp", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        ).json()
        totp = pyotp.TOTP(enrol["secret"])
        await h.client.post(
            "/mfa/totp/confirm",
            json={"factor_id": enrol["factor_id"], "code": totp.at(h.clock.now())},
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        stepped = await sign_in(h, US_CLIENT, device_id="laptop-2")
        assert stepped.status_code == 401 and stepped.json()["error"] == "insufficient_user_authentication"
        h.clock.advance(30)
        with_factor = await sign_in(
            h, US_CLIENT, device_id="laptop-2", second_factor={"type": "totp", "code": totp.at(h.clock.now())}
        )
        assert with_factor.status_code == 200, with_factor.text


async def test_high_score_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    async with running_app(
        settings_for(tmp_path, sqlite_url, risk_step_up_at=20, risk_deny_at=45), FakeClock()
    ) as h:
        reply = await sign_in(h, US_CLIENT)
        assert reply.status_code == 403 and reply.json()["error"] == "access_denied"
        assert "access_token" not in reply.text
        local = await sign_in(h)  # from the machine itself: no country mismatch
        assert local.status_code == 200, local.text
