"""``portcullis policy check | explain`` run in-process through the parser ``add_parser`` builds."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.chain.types import ComplianceDecision
from app.cli import policy as policy_cli
from app.policy.model import DEFAULT_POLICY_PATH
from app.settings import load_settings
from tests.policy.helpers import ADDRESS
from tests.policy.test_facts import RECORD, _decision

FACTS = json.dumps(
    {"residence": "DE", "investor_class": "retail", "kyc_level": 2, "aml_risk": 1, "flags": []}
)
NOW = "2026-03-01T12:00:00Z"


def _run(argv: list[str], settings: Any = None, **kwargs: Any) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="portcullis")
    policy_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    assert args.fn is policy_cli.run
    out, err = io.StringIO(), io.StringIO()
    code = policy_cli.run(settings or SimpleNamespace(), args, out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_check_default() -> None:
    code, out, err = _run(["policy", "check"])
    assert code == 0, err
    assert out.startswith(
        f"{DEFAULT_POLICY_PATH}: ok: 12 scopes (openid profile compliance portfolio:read perps:trade"
    )
    assert "authorization details: derivatives_trade, withdrawal; sha256:" in out


def test_check_with_real_settings(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    code, out, _ = _run(["policy", "check"], settings)
    assert code == 0 and out.startswith(str(DEFAULT_POLICY_PATH))


def test_check_uses_the_configured_file(tmp_path: Path) -> None:
    path = tmp_path / "venue.toml"
    path.write_text('version = 1\n[authentication]\nacr_levels = ["a"]\n[scopes.openid]\n')
    code, out, _ = _run(["policy", "check"], SimpleNamespace(policy_file=path))
    assert code == 0 and out.startswith(f"{path}: ok: 1 scopes (openid)")


def test_check_reports_problems_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'version = 1\n[authentication]\nacr_levels = ["a"]\n[scopes.openid]\nmin_kyc_level = 5\nx = 1\n'
    )
    code, out, err = _run(["policy", "check", str(path)])
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{path}:5: scopes.openid.min_kyc_level: input should be less than or equal to 3",
        f"{path}:6: scopes.openid.x: unknown key",
    ]


def test_explain_rule_by_rule() -> None:
    code, out, err = _run(
        [
            "policy",
            "explain",
            ADDRESS,
            "--scope",
            "openid perps:trade",
            "--scope",
            "options:trade",
            "--facts",
            FACTS,
            "--now",
            NOW,
        ]
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == f"account  {ADDRESS}"
    assert any(line.startswith("perps:trade ") and line.endswith("REFUSED") for line in lines)
    assert any(
        "FAIL  scope/perps:trade/when[retail-appropriateness]/required_flags" in line for line in lines
    )
    assert any("pass  scope/perps:trade/residence_deny" in line for line in lines)
    assert lines[-3:] == [
        "outcome  issue (narrower than requested)",
        'scope    "openid"',
        "lifetime at most 3600 s",
    ]


def test_explain_json_and_details(tmp_path: Path) -> None:
    details = tmp_path / "details.json"
    details.write_text(
        json.dumps(
            [
                {
                    "type": "derivatives_trade",
                    "actions": ["place_order"],
                    "instruments": ["ETH-PERP"],
                    "max_leverage": 10,
                }
            ]
        )
    )
    facts_doc = json.dumps(
        {
            "residence": "DE",
            "investor_class": "retail",
            "kyc_level": 2,
            "aml_risk": 1,
            "flags": ["appropriateness_derivatives"],
        }
    )
    code, out, err = _run(
        [
            "policy",
            "explain",
            ADDRESS,
            "--scope",
            "openid",
            "--details",
            f"@{details}",
            "--facts",
            facts_doc,
            "--now",
            NOW,
            "--json",
            "--amr",
            "siwe,otp",
            "--auth-age",
            "30",
        ]
    )
    assert code == 0, err
    doc = json.loads(out)
    decision = doc["decision"]
    assert decision["granted_details"][0]["max_leverage"] == 2
    assert decision["inputs"]["amr"] == ["siwe", "otp"]
    assert decision["inputs"]["auth_time"] == decision["now"] - 30
    assert all({"item", "rule_id", "passed", "auth", "text"} == set(c) for c in doc["checks"])


def test_explain_step_up() -> None:
    code, out, _ = _run(
        ["policy", "explain", ADDRESS, "--scope", "openid vault:withdraw", "--facts", FACTS, "--now", NOW]
    )
    assert code == 0
    assert "outcome  step-up: 401 insufficient_user_authentication (RFC 9470), " in out
    assert 'acr_values="urn:portcullis:acr:wallet+mfa", max_age="300"' in out


def test_explain_reads_the_injected_decision() -> None:
    seen: list[tuple[str, int | None]] = []

    async def decision_for(address: str, chain_id: int | None) -> ComplianceDecision:
        seen.append((address, chain_id))
        return _decision(replace(RECORD, residence=840))  # US, no US-person flag: eligible, policy says no

    code, out, _ = _run(
        ["policy", "explain", ADDRESS, "--scope", "openid perps:trade", "--now", NOW, "--chain", "1"],
        decision_for=decision_for,
    )
    assert code == 0 and seen == [(ADDRESS, 1)]
    lines = out.splitlines()
    assert lines[2].startswith("eligibility  PASS  chain 1 block 123")
    assert "residence US is denied" in out


def test_explain_stops_at_the_chains_eligibility_rule() -> None:
    async def decision_for(address: str, chain_id: int | None) -> ComplianceDecision:
        return _decision(replace(RECORD, flags=0x01), reasons=("us_person",))

    code, out, _ = _run(
        ["policy", "explain", ADDRESS, "--scope", "openid", "--now", NOW], decision_for=decision_for
    )
    assert code == 0
    assert out.splitlines()[2] == "eligibility  REFUSED  not eligible on chain 1 (block 123): us_person"
    assert out.rstrip().endswith(
        "outcome  deny at eligibility, before the policy: 403 not_eligible: "
        "not eligible on chain 1 (block 123): us_person"
    )
    assert "issue" not in out
    code, out, _ = _run(
        ["policy", "explain", ADDRESS, "--scope", "openid", "--now", NOW, "--json"], decision_for=decision_for
    )
    doc = json.loads(out)
    assert doc["eligibility"]["verdict"] == "refused" and doc["eligibility"]["error"] == "not_eligible"
    assert doc["decision"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["policy", "explain", ADDRESS, "--scope", "openid"],
            "portcullis policy: no compliance source is configured: give the account's facts with --facts",
        ),
        (
            ["policy", "explain", "0x123", "--scope", "openid", "--facts", "{}"],
            "portcullis policy: '0x123' is not a 0x-prefixed 20-byte address",
        ),
        (["policy", "explain", ADDRESS, "--facts", "{nope"], "portcullis policy: --facts: not valid JSON"),
        (
            ["policy", "explain", ADDRESS, "--facts", '{"colour": 1}'],
            "portcullis policy: unknown facts key(s): colour",
        ),
        (
            ["policy", "explain", ADDRESS, "--facts", "{}", "--details", '[{"type": "swap"}]'],
            "portcullis policy: invalid_authorization_details: authorization_details[0].type: unknown type",
        ),
        (
            ["policy", "explain", ADDRESS, "--facts", "{}", "--now", "yesterday"],
            "portcullis policy: --now 'yesterday' is not an RFC 3339 time",
        ),
        (
            ["policy", "explain", ADDRESS, "--facts", "@/nonexistent/facts.json"],
            "portcullis policy: --facts: cannot read /nonexistent/facts.json",
        ),
    ],
)
def test_explain_bad_input(argv: list[str], message: str) -> None:
    code, out, err = _run(argv)
    assert code == 2 and out == ""
    assert err.startswith(message)
