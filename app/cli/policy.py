"""``portcullis policy check | explain``: validate a policy file, and show how it decides for one account.

``check`` needs nothing but the file. ``explain`` needs the account's compliance facts: from ``--facts JSON``,
or from the injected ``decision_for(address, chain_id)`` (the chain reader, wired by the caller, read as the
server reads it). From the chain it runs the sign-in's decision in the sign-in's order: the chain's
eligibility rule first (``app.oauth.compliance.check_eligible``, the step that answers 403 ``not_eligible``),
then the policy. Exit codes: 0 done (whatever the decision), 1 the policy file is invalid or the chain
cannot be read, 2 bad input (arguments, JSON, no source of facts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from app.chain.types import ComplianceDecision
from app.errors import SignInRejected, TemporarilyUnavailable
from app.oauth.compliance import check_eligible
from app.policy.caip import EVM_ADDRESS
from app.policy.engine import PolicyDecision, evaluate
from app.policy.errors import InvalidAuthorizationDetails, PolicyError
from app.policy.explain import describe_facts, explain
from app.policy.facts import AuthContext, FactsInputError, facts_from_decision, facts_from_json
from app.policy.model import DEFAULT_POLICY_PATH, Policy, load_policy
from app.policy.rar import parse_authorization_details
from app.settings import Settings

DecisionFor = Callable[[str, int | None], Awaitable[ComplianceDecision | None]]
DEFAULT_ACR = "urn:portcullis:acr:wallet"


class UsageError(Exception):
    """Bad input to a policy command: one line on stderr, exit code 2."""


class ChainReadError(Exception):
    """The chain (or the development server) cannot be read: one line on stderr, exit code 1."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``policy check`` and ``policy explain`` to the ``portcullis`` parser; sets ``fn=run``."""
    policy = sub.add_parser("policy", help="the authorization policy file (check, explain)")
    actions = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = actions.add_parser("check", help="validate a policy file without starting the server")
    check.add_argument(
        "file", nargs="?", type=Path, help="default: PORTCULLIS_POLICY_FILE or the shipped default"
    )
    explain_p = actions.add_parser("explain", help="the decision for one account, rule by rule")
    explain_p.add_argument("address", help="the wallet address (0x...)")
    explain_p.add_argument(
        "--scope",
        action="append",
        default=[],
        help='requested scopes, e.g. "openid perps:trade" (repeatable)',
    )
    explain_p.add_argument("--details", help="authorization_details as JSON, or @FILE")
    explain_p.add_argument("--facts", help="compliance facts as JSON, or @FILE (see docs/POLICY.md)")
    explain_p.add_argument(
        "--chain", type=int, help="the sign-in's chain id (default: the first of PORTCULLIS_CHAIN_IDS)"
    )
    explain_p.add_argument("--acr", default=DEFAULT_ACR, help=f"the sign-in's acr (default {DEFAULT_ACR})")
    explain_p.add_argument("--amr", default="", help="comma-separated amr values")
    explain_p.add_argument("--auth-age", type=int, default=0, help="seconds since the sign-in (default 0)")
    explain_p.add_argument("--client-kind", choices=["wallet", "service"], default="wallet")
    explain_p.add_argument("--policy", type=Path, help="policy file (default: the configured one)")
    explain_p.add_argument("--now", help="evaluate at this RFC 3339 time (default: now)")
    explain_p.add_argument("--json", action="store_true", help="the audit record and every check as JSON")
    policy.set_defaults(fn=run)


def run(
    settings: Settings,
    args: argparse.Namespace,
    *,
    decision_for: DecisionFor | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one ``policy`` subcommand."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.policy_command == "check":
            return _check(settings, args, out, err)
        return _explain(settings, args, decision_for, out)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    except (UsageError, FactsInputError) as exc:
        print(f"portcullis policy: {exc}", file=err)
        return 2
    except InvalidAuthorizationDetails as exc:
        print(f"portcullis policy: invalid_authorization_details: {exc.description}", file=err)
        return 2
    except ChainReadError as exc:
        print(f"portcullis policy: {exc}", file=err)
        return 1


def policy_path(settings: Settings) -> Path:
    """PORTCULLIS_POLICY_FILE when the settings have it, else the shipped default."""
    configured = getattr(settings, "policy_file", None)
    return Path(configured) if configured else DEFAULT_POLICY_PATH


def _check(settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path = args.file or policy_path(settings)
    policy = load_policy(path)
    details = ", ".join(policy.authorization_details_types_supported()) or "none"
    print(
        f"{path}: ok: {len(policy.scopes)} scopes ({' '.join(policy.scopes)}); "
        f"authorization details: {details}; {policy.digest}",
        file=out,
    )
    return 0


def _explain(
    settings: Settings, args: argparse.Namespace, decision_for: DecisionFor | None, out: TextIO
) -> int:
    if EVM_ADDRESS.fullmatch(args.address) is None:
        raise UsageError(f"{args.address!r} is not a 0x-prefixed 20-byte address")
    policy: Policy = load_policy(args.policy or policy_path(settings))
    now = _now(args.now)
    scopes = [s for value in args.scope for s in value.split()]
    details = parse_authorization_details(_json_arg(args.details, "--details") if args.details else None)
    if args.auth_age < 0:
        raise UsageError("--auth-age must not be negative")
    amr = tuple(a for a in args.amr.split(",") if a)
    auth = AuthContext(args.acr, amr, now - timedelta(seconds=args.auth_age))
    if args.facts is not None:
        facts = facts_from_json(_json_arg(args.facts, "--facts"), now, account=args.address)
        step = Eligibility("not checked", "facts given with --facts (the chain's rule reads the chain)")
    elif decision_for is not None:
        chain_decision = asyncio.run(_read(decision_for, args.address, args.chain))
        step = eligibility(chain_decision)
        facts = facts_from_decision(chain_decision, now)
        if step.refusal is not None:  # the sign-in stops here: the policy is never asked
            _print_refusal(policy, args, facts, step, out)
            return 0
    else:
        raise UsageError("no compliance source is configured: give the account's facts with --facts JSON")
    decision = evaluate(policy, facts, scopes, details, auth, now, client_kind=args.client_kind)
    if args.json:
        print(json.dumps(_json_doc(step, decision), indent=2), file=out)
    else:
        print("\n".join(explain(policy, decision, args.address, first=[step.line()])), file=out)
    return 0


class Eligibility:
    """The first step of a sign-in's decision: the chain's eligibility rule (``check_eligible``)."""

    def __init__(self, verdict: str, text: str, refusal: SignInRejected | None = None) -> None:
        self.verdict, self.text, self.refusal = verdict, text, refusal

    def line(self) -> str:
        return f"eligibility  {self.verdict.upper()}  {self.text}"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"verdict": self.verdict, "text": self.text}
        if self.refusal is not None:
            doc |= {"status": self.refusal.status, "error": self.refusal.error}
        return doc


def eligibility(decision: ComplianceDecision | None) -> Eligibility:
    """Run ``check_eligible`` on the chain's decision, as ``/siwe/verify`` does before the policy."""
    if decision is None:
        return Eligibility("not checked", "no compliance source on this chain (nor does the server check)")
    try:
        check_eligible(decision)
    except SignInRejected as exc:
        return Eligibility("refused", exc.description, exc)
    where = f"chain {decision.chain_id} block {decision.block_number}"
    return Eligibility("pass", f"{where}: every required source says yes")


def _print_refusal(
    policy: Policy, args: argparse.Namespace, facts: Any, step: Eligibility, out: TextIO
) -> None:
    assert step.refusal is not None
    outcome = f"{step.refusal.status} {step.refusal.error}: {step.refusal.description}"
    if args.json:
        doc: dict[str, Any] = {
            "eligibility": step.to_json(),
            "outcome": outcome,
            "decision": None,
            "checks": [],
        }
        print(json.dumps(doc, indent=2), file=out)
        return
    lines = [
        f"policy   {policy.source} ({policy.digest[:19]}...)",
        f"account  {args.address}",
        step.line(),
        f"facts    {describe_facts(facts)}",
        "",
        f"outcome  deny at eligibility, before the policy: {outcome}",
    ]
    print("\n".join(lines), file=out)


def _json_doc(step: Eligibility, decision: PolicyDecision) -> dict[str, Any]:
    return {
        "eligibility": step.to_json(),
        "decision": decision.to_audit(),
        "checks": [
            {"item": c.item, "rule_id": c.rule_id, "passed": c.passed, "auth": c.auth, "text": c.text}
            for c in decision.checks
        ],
    }


async def _read(decision_for: DecisionFor, address: str, chain_id: int | None) -> ComplianceDecision | None:
    from app.chain.types import ChainUnavailable
    from app.cli.registry_chain import RegistryCliError

    try:
        return await decision_for(address, chain_id)
    except TemporarilyUnavailable as exc:
        raise ChainReadError(exc.description) from None
    except (RegistryCliError, ChainUnavailable) as exc:
        raise ChainReadError(str(exc)) from None


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise UsageError("--now needs a time zone offset (e.g. 2026-01-01T00:00:00Z)")
    return value


def _json_arg(text: str, option: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {text[1:]} ({exc.strerror})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option}: not valid JSON ({exc})") from None
