"""The policy file: the shipped default validates, the docs' worked example validates and decides as
documented, and every problem is reported as ``{source}:{line}: {where}: {problem}``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.policy import locate
from app.policy.engine import evaluate
from app.policy.errors import PolicyError
from app.policy.model import DEFAULT_POLICY_PATH, load_policy, parse_policy
from tests.policy.helpers import NOW, auth, facts, trade

DOCS = Path(__file__).resolve().parents[2] / "docs" / "POLICY.md"

MINIMAL = """\
version = 1

[authentication]
acr_levels = ["urn:portcullis:acr:wallet", "urn:portcullis:acr:wallet+mfa"]

[scopes.openid]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="p.toml")
    assert str(info.value) == "\n".join(info.value.problems)
    return list(info.value.problems)


def test_default_policy_loads() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.version == 1
    assert policy.digest.startswith("sha256:")
    assert policy.acr_levels == ("urn:portcullis:acr:wallet", "urn:portcullis:acr:wallet+mfa")
    for scope in ("openid", "profile", "portfolio:read", "perps:trade", "options:trade", "vault:deposit"):
        assert scope in policy.scopes
    assert policy.scopes["vault:withdraw"].requirements.acr == "urn:portcullis:acr:wallet+mfa"


def test_minimal_policy() -> None:
    policy = parse_policy(MINIMAL)
    assert policy.scopes_supported() == ["openid"]
    assert policy.authorization_details_types_supported() == []
    assert policy.scopes["openid"].clients == frozenset({"wallet"})
    assert policy.scopes["openid"].requirements.not_sanctioned


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "min_kyc_level = 4\n",
            "p.toml:7: scopes.openid.min_kyc_level: input should be less than or equal to 3",
        ),
        ('min_kyc_level = "2"\n', "p.toml:7: scopes.openid.min_kyc_level: input should be a valid integer"),
        ("colour = 1\n", "p.toml:7: scopes.openid.colour: unknown key"),
        (
            'clients = ["robot"]\n',
            "p.toml:7: scopes.openid.clients[0]: input should be 'wallet' or 'service'",
        ),
        (
            'residence_deny = ["XX"]\n',
            "p.toml:7: scopes.openid.residence_deny: 'XX' is not an ISO 3166-1 alpha-2 code (or @list)",
        ),
        (
            'residence_allow = ["@eea"]\n',
            "p.toml:7: scopes.openid.residence_allow: '@eea' names no list in [countries]",
        ),
        (
            'investor_classes = ["whale"]\n',
            "p.toml:7: scopes.openid.investor_classes: unknown investor class 'whale'; "
            "known: retail, professional, eligible_counterparty",
        ),
        (
            'required_flags = ["vip"]\n',
            "p.toml:7: scopes.openid.required_flags: unknown flag 'vip'; known: us_person, "
            "appropriateness_derivatives, accredited, frozen, pep (or an alias in [flags])",
        ),
        (
            'acr = "urn:x"\n',
            "p.toml:7: scopes.openid.acr: acr 'urn:x' is not one of authentication.acr_levels",
        ),
        (
            "max_token_lifetime = 0\n",
            "p.toml:7: scopes.openid.max_token_lifetime: input should be greater than or equal to 1",
        ),
        (
            "max_token_lifetime = 90.5\n",
            "p.toml:7: scopes.openid.max_token_lifetime: input should be a valid integer",
        ),
    ],
)
def test_problem_names_line_and_key(extra: str, expected: str) -> None:
    assert _problems(MINIMAL + extra) == [expected]


def test_every_problem_is_reported_in_line_order() -> None:
    text = (
        MINIMAL
        + 'min_kyc_level = 9\n\n[scopes."perps:trade"]\nacr = "urn:nope"\n\n[scopes.other]\ncolour = 1\n'
    )
    assert _problems(text) == [
        "p.toml:7: scopes.openid.min_kyc_level: input should be less than or equal to 3",
        "p.toml:13: scopes.other.colour: unknown key",
    ]  # shape errors first; semantic ones (acr) are reported once the shape is right


def test_semantic_problems_on_their_lines() -> None:
    text = MINIMAL + (
        '\n[countries]\neu = [\n  "DE",\n  "ZZ",\n]\n'
        '\n[scopes."perps:trade"]\nresidence_allow = ["@eu"]\nacr = "urn:nope"\n'
        '\n[[scopes."perps:trade".when]]\nid = "Retail"\nclasses = ["retail"]\n'
    )
    assert _problems(text) == [
        "p.toml:9: countries.eu: 'ZZ' is not an ISO 3166-1 alpha-2 code",
        "p.toml:16: scopes.\"perps:trade\".acr: acr 'urn:nope' is not one of authentication.acr_levels",
        'p.toml:19: scopes."perps:trade".when[0].id: '
        "an id is lower-case letters, digits, - and _ (at most 64)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version = 2\n[authentication]\nacr_levels = ['a']\n[scopes.openid]\n",
            "p.toml:1: version: version must be 1",
        ),
        (
            "[authentication]\nacr_levels = ['a']\n[scopes.openid]\n",
            "p.toml:1: version: required key is missing",
        ),
        (
            "version = 1\n[authentication]\nacr_levels = []\n[scopes.openid]\n",
            "p.toml:3: authentication.acr_levels: list should have at least 1 item after validation, not 0",
        ),
        (
            "version = 1\n[authentication]\nacr_levels = ['a']\n[scopes]\n",
            "p.toml:4: scopes: dictionary should have at least 1 item after validation, not 0",
        ),
        ("version = 1\nversion = 2\n", "p.toml:2: invalid TOML: Cannot overwrite a value"),
        (
            "version = 1\n[authentication\n",
            "p.toml:2: invalid TOML: Expected ']' at the end of a table declaration",
        ),
        ("version = 1\nlist = [1, 2\n", "p.toml:2: invalid TOML: Unclosed array"),
    ],
)
def test_document_level_problems(text: str, expected: str) -> None:
    assert _problems(text) == [expected]


def test_details_problems() -> None:
    text = MINIMAL + (
        "\n[details.derivatives_trade]\n"
        'actions = ["place_order", "teleport"]\n'
        'order_types = ["limit"]\n'
        'notional_currencies = ["USD"]\n'
        'subaccount_chains = ["eip155"]\n'
        "\n[[details.derivatives_trade.instruments]]\n"
        'id = "perps"\npatterns = ["*-perp"]\nscope = "perps:trade"\n'
        "\n[[details.derivatives_trade.limits]]\n"
        'id = "retail"\nclasses = ["retail"]\nmax_notional = 10000.5\n'
        "\n[details.withdrawal]\n"
        'scope = "openid"\nassets = ["USDC"]\ndestination_chains = ["eip155:1"]\n'
        "\n[[details.withdrawal.limits]]\n"
        'id = "all"\nmax_amount = { ETH = "1" }\n'
        "\n[details.payments]\n"
    )
    assert _problems(text) == ["p.toml:33: details.payments: unknown key"]
    text = text.replace("\n[details.payments]\n", "")
    assert _problems(text) == [
        "p.toml:9: details.derivatives_trade.actions: unknown action 'teleport'; "
        "known: place_order, amend_order, cancel_order, close_position",
        "p.toml:12: details.derivatives_trade.subaccount_chains: "
        "'eip155' is not a CAIP-2 chain id such as \"eip155:1\"",
        "p.toml:16: details.derivatives_trade.instruments[0].patterns: '*-perp': use A-Z, 0-9, - and * only",
        "p.toml:17: details.derivatives_trade.instruments[0].scope: "
        "scope 'perps:trade' is not defined in [scopes]",
        "p.toml:22: details.derivatives_trade.limits[0].max_notional: "
        "10000.5 is not a positive decimal amount "
        'such as "10000" or "0.5" (a string)',
        "p.toml:31: details.withdrawal.limits[0].max_amount.ETH: asset 'ETH' is not in assets",
    ]


def test_service_scope_cannot_need_a_record() -> None:
    text = MINIMAL + '\n[scopes."service:x"]\nclients = ["service"]\nrequire_record = true\n'
    assert _problems(text) == [
        'p.toml:8: scopes."service:x": '
        "a service-only scope cannot need a compliance record, an acr or [[when]] "
        "blocks (client_credentials has no wallet holder)"
    ]


def test_flag_aliases() -> None:
    bad = MINIMAL.replace("[scopes.openid]", "[flags]\nofficer = 3\nfrozen = 17\n\n[scopes.openid]")
    assert _problems(bad) == [
        "p.toml:7: flags.officer: bit 3 is not free for deployments (16..31)",
        "p.toml:8: flags.frozen: flag alias 'frozen' must be a new lower-case name",
    ]
    good = MINIMAL.replace("[scopes.openid]", "[flags]\nofficer = 17\n\n[scopes.openid]")
    policy = parse_policy(good + 'required_flags = ["officer", "bit20"]\n')
    flags = policy.scopes["openid"].requirements.required_flags
    assert [(f.label, f.fact) for f in flags] == [("officer", "bit17"), ("bit20", "bit20")]


def test_load_policy_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.toml")
    assert str(info.value).startswith(f"{tmp_path / 'nope.toml'}:1: cannot read the policy file")


def test_load_policy_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(MINIMAL + "max_auth_age = -1\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert (
        str(info.value) == f"{path}:7: scopes.openid.max_auth_age: input should be greater than or equal to 1"
    )


# ---------------------------------------------------------------- the docs' worked example


def _docs_example() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    return next(b for b in blocks if "[countries]" in b and "eea" in b)


def test_docs_worked_example() -> None:
    policy = parse_policy(_docs_example(), source="docs/POLICY.md")
    scopes = ["openid", "perps:trade"]
    pro = evaluate(policy, facts(residence="DE"), scopes, [trade(max_leverage=25)], auth(), NOW)
    assert pro.granted_scopes == ("openid", "perps:trade")
    assert pro.granted_details[0]["max_leverage"] == 10
    us_person = evaluate(policy, facts(flags=["us_person"]), scopes, [], auth(), NOW)
    assert [r.reason for r in us_person.refused] == ["forbidden flag us_person is set"]
    us_resident = evaluate(policy, facts(residence="US"), scopes, [], auth(), NOW)
    assert [r.reason for r in us_resident.refused] == ["residence US is not allowed"]
    retail = evaluate(policy, facts(investor_class="retail"), scopes, [], auth(), NOW)
    assert [r.reason for r in retail.refused] == [
        "investor class retail is not allowed (professional, eligible_counterparty only)"
    ]


# ---------------------------------------------------------------- key positions


def test_key_lines() -> None:
    text = (
        "a = 1\n"  # 1
        "[t]\n"  # 2
        'x.y = """\n'  # 3
        "z = 'not a key'\n"  # 4
        '"""\n'  # 5
        "list = [\n"  # 6
        "  { k = 1 },\n"  # 7
        "]\n"  # 8
        '[t."q.r"]\n'  # 9
        "'lit' = 2 # c\n"  # 10
        "[[arr]]\n"  # 11
        "v = 1\n"  # 12
        "[[arr]]\n"  # 13
        "v = 2\n"  # 14
        "[arr.sub]\n"  # 15
        "w = 3\n"  # 16
    )
    lines = locate.key_lines(text)
    assert lines[("a",)] == 1
    assert lines[("t",)] == 2
    assert lines[("t", "x", "y")] == 3
    assert ("z",) not in lines and ("t", "z") not in lines
    assert lines[("t", "list")] == 6
    assert lines[("t", "q.r", "lit")] == 10
    assert lines[("arr", 0, "v")] == 12
    assert lines[("arr", 1, "v")] == 14
    assert lines[("arr", 1, "sub", "w")] == 16
    assert locate.line_of(lines, ("t", "list", 0, "k")) == 6
    assert locate.line_of(lines, ("missing",)) == 1


def test_scopes_declare_the_claims_they_release() -> None:
    text = MINIMAL + (
        '\n[scopes.compliance]\nclaims = ["compliance"]\n'
        '\n[scopes."perps:trade"]\naccess_token_compliance = ["valid_until", "investor_class"]\n'
    )
    policy = parse_policy(text)
    assert policy.releases(["openid", "compliance"], "compliance")
    assert not policy.releases(["openid", "perps:trade"], "compliance")
    assert policy.access_token_compliance(["openid", "perps:trade"]) == {"valid_until", "investor_class"}
    assert policy.access_token_compliance(["openid", "unknown"]) == frozenset()


def test_claim_declarations_are_checked() -> None:
    text = MINIMAL + (
        '\n[scopes.a]\nclaims = ["email"]\naccess_token_compliance = ["aml_risk"]\n'
        '\n[scopes."service:x"]\nclients = ["service"]\naccess_token_compliance = ["valid_until"]\n'
    )
    assert _problems(text) == [
        "p.toml:9: scopes.a.claims: unknown claim 'email'; known: compliance",
        "p.toml:10: scopes.a.access_token_compliance: unknown fact 'aml_risk'; known: residence, "
        "investor_class, kyc_level, flags, valid_until",
        'p.toml:12: scopes."service:x": a service-only scope cannot carry claims about a wallet holder',
    ]
