"""``portcullis demo``: wallet sign-ins against a running server, showing what the trading policy grants.

On the development chain of ``make run`` (docs/DEV_CHAIN.md) the demo signs in as the seeded demo wallets,
with their public development keys, each asking for the same trading access: ``openid perps:trade`` and an
RFC 9396 ``derivatives_trade`` detail (ETH-PERP, 20x, a 50 000 USDC notional cap). It prints what each got:

- the professional investor (#2): everything asked, with every step of the sign-in shown (nonce, EIP-4361
  message, signature, tokens, the ID token checked against the JWKS, UserInfo, refresh-token rotation);
- the retail investor without an appropriateness test (#3): trading refused, signed in with ``openid`` only;
- a retail investor with a passed appropriateness test (#5, whose record the demo writes first with the
  development compliance key, through ``portcullis registry grant``): leverage and notional narrowed;
- the US person (#4): refused by the chain's eligibility rule, with the server's reason.

The reasons for a narrowing come from ``portcullis policy explain`` (the server's decision, rule by rule).
Without a development chain a throwaway wallet signs in with ``openid``, every step shown. Before all of it
the demo waits for the server's /health (``--wait SECONDS``, 120 by default), so that
``make run & portcullis demo`` works on a first run, while ``make run`` is still installing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from app.cli.failures import EnvironmentProblem

DEFAULT_WAIT_SECONDS = 120.0
POLL_SECONDS = 0.5
TRADING_SCOPE = "openid perps:trade"
TRADING_DETAIL: dict[str, Any] = {
    "type": "derivatives_trade",
    "actions": ["place_order", "cancel_order"],
    "instruments": ["ETH-PERP"],
    "max_leverage": 20,
    "max_notional": {"amount": "50000", "currency": "USDC"},
}
# The funded development account (#5, no seeded record) that the demo lists as a retail investor with a
# passed appropriateness test: the seeded retail wallet (#3) has none, so the policy refuses it trading.
APPROPRIATE_RETAIL_INDEX = 5
APPROPRIATE_RETAIL_RECORD = [
    "--residence",
    "FR",
    "--class",
    "retail",
    "--kyc-level",
    "2",
    "--flags",
    "appropriateness_derivatives",
]


@dataclass(frozen=True)
class DevTools:
    """The CLI's own commands, wired by ``portcullis demo`` with the same settings.

    ``grant(address, options)`` runs ``portcullis registry grant ADDRESS OPTIONS...`` (exit code);
    ``explain(address, scope, details_json)`` runs ``portcullis policy explain ... --json`` (its document,
    or None when it failed)."""

    grant: Callable[[str, list[str]], int]
    explain: Callable[[str, str, str], dict[str, Any] | None]


def _step(title: str, value: Any) -> None:
    print(f"\n== {title}")
    print(value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True))


def build_message(offer: dict[str, Any], address: str, statement: str | None = None) -> str:
    """The EIP-4361 text for the values the server asked for."""
    # An explicit scheme (EIP-4361 erratum): without it a verifier must assume https.
    lines = [
        f"{offer['scheme']}://{offer['domain']} wants you to sign in with your Ethereum account:",
        address,
        "",
    ]
    if statement:
        lines += [statement, ""]
    else:
        lines += [""]
    lines += [
        f"URI: {offer['uri']}",
        "Version: 1",
        f"Chain ID: {offer['chain_id']}",
        f"Nonce: {offer['nonce']}",
        f"Issued At: {datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z",
        f"Expiration Time: {offer['expiration_time']}",
    ]
    return "\n".join(lines)


def wait_for_server(
    http: httpx.Client,
    base_url: str,
    seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Poll GET /health until it answers 200, for at most ``seconds`` (``make run & portcullis demo``: the
    first run installs and starts the server meanwhile). One message while waiting; EnvironmentProblem when
    the server never answered."""
    deadline = monotonic() + seconds
    announced = False
    while True:
        try:
            reply = http.get("/health", timeout=2)
            if reply.status_code == 200:
                return
            last = f"GET /health answered {reply.status_code}"
        except httpx.TransportError as exc:
            last = str(exc) or type(exc).__name__
        if monotonic() >= deadline:
            raise EnvironmentProblem(
                f"the server at {base_url} did not answer within {seconds:g} s ({last}); "
                "start it with `make run`, or give --url or a longer --wait SECONDS"
            )
        if not announced:
            print(f"waiting for the server at {base_url} (up to {seconds:g} s)...", flush=True)
            announced = True
        sleep(min(POLL_SECONDS, max(0.0, deadline - monotonic())))


def _sign_in(
    http: httpx.Client,
    wallet: LocalAccount,
    client_id: str,
    ask: dict[str, Any],
    *,
    show: bool,
) -> httpx.Response:
    """POST /siwe/nonce, sign the EIP-4361 message, POST /siwe/verify with ``ask`` (scope, details)."""
    offer = http.post("/siwe/nonce", json={"client_id": client_id}).raise_for_status().json()
    message = build_message(offer, wallet.address, "Sign in to the Portcullis demo.")
    signature = "0x" + wallet.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")
    if show:
        _step("POST /siwe/nonce", offer)
        _step("message to sign (EIP-4361)", message)
        _step("signature (EIP-191 personal_sign)", signature)
    body = {"message": message, "signature": signature, "client_id": client_id, **ask}
    return http.post("/siwe/verify", json=body)


def _check_tokens(http: httpx.Client, config: dict[str, Any], client_id: str, tokens: dict[str, Any]) -> None:
    """The ID token against the JWKS, the access token's claims, UserInfo, one refresh-token rotation."""
    jwks = http.get(config["jwks_uri"]).raise_for_status().json()
    header = jwt.get_unverified_header(tokens["id_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    id_claims = jwt.decode(
        tokens["id_token"],
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience=client_id,
        issuer=config["issuer"],
    )
    _step("ID token claims (signature checked against the JWKS)", id_claims)
    _step("access token claims", jwt.decode(tokens["access_token"], options={"verify_signature": False}))

    info = http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    _step("GET /userinfo", info.raise_for_status().json())

    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id}
    refreshed = http.post("/token", data=form).raise_for_status().json()
    _step(
        "POST /token (refresh_token, rotated)",
        {
            "scope": refreshed["scope"],
            "expires_in": refreshed["expires_in"],
            "refresh_token rotated": refreshed["refresh_token"] != tokens["refresh_token"],
        },
    )


def describe_access(scope: str, details: list[dict[str, Any]]) -> str:
    """A scope and its derivatives_trade details in plain words."""
    parts = [f"scope {scope}"]
    for d in details:
        words = f"{d['type']} {', '.join(d.get('instruments', []))}: {', '.join(d.get('actions', []))}"
        if "max_leverage" in d:
            words += f"; leverage up to {d['max_leverage']}x"
        if "max_notional" in d:
            words += f"; notional up to {d['max_notional']['amount']} {d['max_notional']['currency']}"
        parts.append(words)
    if not details:
        parts.append("no derivatives_trade detail")
    return "; ".join(parts)


def _why(tools: DevTools, address: str, ask: dict[str, Any]) -> list[str]:
    """The policy's reasons for what it refused or narrowed (``portcullis policy explain --json``)."""
    doc = tools.explain(address, ask["scope"], json.dumps(ask["authorization_details"]))
    decision = doc.get("decision") if doc else None
    if not decision:
        return ["(portcullis policy explain could not say why)"]
    asked_fields = {key for detail in ask["authorization_details"] for key in detail}
    lines: list[str] = []
    for kind, entries in (("refused", decision["refused"]), ("narrowed", decision["narrowed"])):
        for entry in entries:
            field = entry["item"].rsplit(".", 1)[-1]
            if kind == "narrowed" and field not in asked_fields:
                continue  # a bound filled in that the demo did not ask about (order types)
            if any(entry["reason"].endswith(line.split(": ", 1)[1]) for line in lines):
                continue  # the same reason again, one level down (the detail of a refused scope)
            lines.append(f"{entry['item']} {kind}: {entry['reason']}")
    return lines


def _report(asked: str, reply: httpx.Response, why: Callable[[], list[str]]) -> None:
    """What one wallet asked for and what it got, in plain words."""
    print(f"asked    {asked}")
    if reply.status_code != 200:
        body = reply.json()
        print(f"REFUSED  {reply.status_code} {body.get('error')}: {body.get('error_description')}")
        return
    tokens = reply.json()
    granted = describe_access(tokens["scope"], tokens.get("authorization_details", []))
    if granted == asked:
        print(f"GRANTED  as asked: {granted}")
        return
    print(f"NARROWED {granted}")
    for n, line in enumerate(why()):
        print(f"{'why' if n == 0 else '':8} {line}")


def run_demo(
    base_url: str,
    *,
    client_id: str,
    tools: DevTools | None = None,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> int:
    """Wait for the server, then sign in: the trading story on a development chain (``tools`` wired), else
    a throwaway wallet asking for ``openid``."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        wait_for_server(http, base_url, wait_seconds)
        config = http.get("/.well-known/openid-configuration").raise_for_status().json()
        _step("discovery (issuer, jwks_uri)", {"issuer": config["issuer"], "jwks_uri": config["jwks_uri"]})
        dev = http.get("/dev/chain/info")
        if dev.status_code != 200 or tools is None:
            return _throwaway(http, config, client_id)
        return _trading_story(http, config, client_id, tools, dev.json())


def _throwaway(http: httpx.Client, config: dict[str, Any], client_id: str) -> int:
    wallet = Account.create()
    _step(
        "throwaway wallet (no development chain here: no seeded records to show the trading policy)",
        wallet.address,
    )
    reply = _sign_in(http, wallet, client_id, {}, show=True)
    if reply.status_code != 200:
        _step(f"POST /siwe/verify failed ({reply.status_code})", reply.json())
        return 1
    tokens = reply.json()
    _step("POST /siwe/verify -> tokens (shortened)", _shortened(tokens))
    _check_tokens(http, config, client_id, tokens)
    print("\nsign-in complete")
    return 0


def _shortened(tokens: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:16] + "..." if k.endswith("token") else v) for k, v in tokens.items()}


def _trading_story(
    http: httpx.Client, config: dict[str, Any], client_id: str, tools: DevTools, info: dict[str, Any]
) -> int:
    from app.chain.devchain import DEV_ACCOUNTS  # the public development keys (docs/DEV_CHAIN.md)

    ask = {"scope": TRADING_SCOPE, "authorization_details": [TRADING_DETAIL]}
    asked = describe_access(TRADING_SCOPE, [TRADING_DETAIL])
    labels = {a["index"]: a["label"] for a in info["demo_accounts"]}
    _step(
        f"development chain {info['chain_id']}, registry {info['registry']}",
        "each demo wallet signs in with its public development key (docs/DEV_CHAIN.md) and asks for\n"
        f"  {asked}\nand the trading policy (docs/POLICY.md) decides what it gets.",
    )

    def wallet(index: int, label: str) -> LocalAccount:
        account: LocalAccount = Account.from_key(DEV_ACCOUNTS[index].private_key)
        _step(f"#{index} {label}", account.address)
        return account

    professional = wallet(2, labels[2])
    reply = _sign_in(http, professional, client_id, ask, show=True)
    if reply.status_code != 200:
        _step(f"POST /siwe/verify failed ({reply.status_code})", reply.json())
        return 1
    tokens = reply.json()
    _step("POST /siwe/verify -> tokens (shortened)", _shortened(tokens))
    _check_tokens(http, config, client_id, tokens)
    print()
    _report(asked, reply, list)

    retail = wallet(3, labels[3])
    _report(
        asked, _sign_in(http, retail, client_id, ask, show=False), lambda: _why(tools, retail.address, ask)
    )

    appropriate = wallet(APPROPRIATE_RETAIL_INDEX, "retail investor, France, derivatives appropriateness")
    # The development chain persists across restarts: an earlier demo run's record may still be there.
    # Asked of the chain through policy explain, not by signing in (that would cache "no record").
    probe = tools.explain(appropriate.address, TRADING_SCOPE, json.dumps([TRADING_DETAIL]))
    if probe is not None and probe.get("eligibility", {}).get("verdict") == "pass":
        print("(its record, written by an earlier demo run, is on the chain: nothing written)")
    else:
        print("(no seeded record: the demo writes one with the development compliance key)")
        if tools.grant(appropriate.address, APPROPRIATE_RETAIL_RECORD) != 0:
            return 1
    reply = _sign_in(http, appropriate, client_id, ask, show=False)
    _report(asked, reply, lambda: _why(tools, appropriate.address, ask))

    us_person = wallet(4, labels[4])
    _report(asked, _sign_in(http, us_person, client_id, ask, show=False), list)
    print("\ndemo complete")
    return 0
