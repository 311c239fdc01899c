"""Settings: validated at start, a bad value names its variable, production refuses default secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings


def test_development_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORTCULLIS_PORT", "PORTCULLIS_ISSUER", "PORTCULLIS_MODE", "PORTCULLIS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.mode == "development" and s.issuer == "http://127.0.0.1:8000"
    assert s.siwe_domain == "127.0.0.1:8000" and s.siwe_uri == "http://127.0.0.1:8000"
    assert s.database_url == "sqlite+aiosqlite:///var/portcullis.db"
    # development runs the embedded chain (31337) unless chains are configured
    assert s.access_token_audience == s.issuer and s.dev_chain and s.chain_ids == [31337]


def test_configured_chains_replace_the_dev_chain() -> None:
    s = load_settings(chains=[{"chain_id": 8453, "rpc_urls": ["https://rpc.example"]}])
    assert not s.dev_chain and s.chain_ids == [8453]
    assert load_settings(dev_chain=False).chain_ids == [1]


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_PORT", "9100")
    monkeypatch.setenv("PORTCULLIS_CHAIN_IDS", "[10, 8453]")
    s = load_settings()
    assert s.port == 9100 and s.issuer == "http://127.0.0.1:9100" and s.chain_ids == [10, 8453]


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("PORTCULLIS_PORT", "eighty", "PORTCULLIS_PORT"),
        ("PORTCULLIS_PORT", "70000", "PORTCULLIS_PORT"),
        ("PORTCULLIS_SIGNING_ALG", "HS256", "PORTCULLIS_SIGNING_ALG"),
        ("PORTCULLIS_NONCE_TTL_SECONDS", "5", "PORTCULLIS_NONCE_TTL_SECONDS"),
        ("PORTCULLIS_CHAIN_IDS", "[0]", "PORTCULLIS_CHAIN_IDS"),
        ("PORTCULLIS_ISSUER", "ftp://x", "PORTCULLIS_ISSUER"),
        ("PORTCULLIS_CLOCK_SKEW_SECONDS", "-1", "PORTCULLIS_CLOCK_SKEW_SECONDS"),
        ("PORTCULLIS_NO_SUCH_THING", "1", "NO_SUCH_THING"),
    ],
)
def test_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_production_refuses_missing_or_weak_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_MODE", "production")
    monkeypatch.setenv("PORTCULLIS_COMPLIANCE", "off")
    monkeypatch.setenv("PORTCULLIS_ISSUER", "https://auth.example.com")
    with pytest.raises(SettingsError, match="PORTCULLIS_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "short")
    with pytest.raises(SettingsError, match="PORTCULLIS_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "k" * 48)
    assert load_settings().mode == "production"


def test_registration_is_off_by_default_and_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.registration_enabled is False and s.registration_initial_access_token is None
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_ENABLED", "true")
    with pytest.raises(SettingsError, match="PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN: required"):
        load_settings()
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN", "dev-token")
    s = load_settings()
    assert s.registration_enabled and "dev-token" not in repr(s) and "dev-token" not in str(s.model_dump())


def test_production_refuses_registration_with_a_short_initial_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_MODE", "production")
    monkeypatch.setenv("PORTCULLIS_COMPLIANCE", "off")
    monkeypatch.setenv("PORTCULLIS_ISSUER", "https://auth.example.com")
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_ENABLED", "true")
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN", "t" * 31)
    with pytest.raises(SettingsError, match="PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN: at least 32"):
        load_settings()
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN", "t" * 32)
    assert load_settings().registration_enabled
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_ENABLED", "false")
    monkeypatch.setenv("PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN", "short")  # unused while off
    assert not load_settings().registration_enabled


def test_production_needs_an_https_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_MODE", "production")
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "k" * 48)
    with pytest.raises(SettingsError, match="PORTCULLIS_ISSUER"):
        load_settings()
    monkeypatch.setenv("PORTCULLIS_ISSUER", "http://auth.example.com")
    with pytest.raises(SettingsError, match="PORTCULLIS_ISSUER: must use https"):
        load_settings()


def test_cli_reports_bad_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    monkeypatch.setenv("PORTCULLIS_PORT", "nope")
    assert main(["db", "upgrade"]) == 2
    assert "PORTCULLIS_PORT" in capsys.readouterr().err


def test_development_secret_is_generated_once(tmp_path: Path) -> None:
    from app.bootstrap import development_secret

    first = development_secret(tmp_path)
    assert len(first) >= 48 and development_secret(tmp_path) == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


REGISTRY = "0x" + "11" * 20
SANCTIONS = "0x" + "22" * 20


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTCULLIS_MODE", "production")
    monkeypatch.setenv("PORTCULLIS_ISSUER", "https://auth.example.com")
    monkeypatch.setenv("PORTCULLIS_SECRET_KEY", "k" * 48)


def test_production_refuses_to_start_without_a_compliance_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    with pytest.raises(SettingsError, match="PORTCULLIS_CHAINS: production needs at least one chain") as info:
        load_settings()
    assert "PORTCULLIS_COMPLIANCE=off" in str(info.value)
    # a chain whose only source is optional gates nothing either
    optional = {"chain_id": 1, "rpc_urls": ["https://rpc.example"]}
    optional |= {"sanctions_oracle": SANCTIONS, "sanctions_required": False}
    with pytest.raises(SettingsError, match="PORTCULLIS_CHAINS"):
        load_settings(chains=[optional])
    gated = load_settings(chains=[{"chain_id": 1, "rpc_urls": ["https://rpc.example"], "registry": REGISTRY}])
    assert gated.compliance == "required" and gated.chains[0].compliance_sources() == {"registry": True}
    assert load_settings(chains=[optional | {"sanctions_required": True}]).mode == "production"


def test_production_refuses_an_accepted_chain_without_a_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    gated = {"chain_id": 1, "rpc_urls": ["https://rpc.example"], "registry": REGISTRY}
    with pytest.raises(SettingsError, match=r"PORTCULLIS_CHAIN_IDS: chain\(s\) 10, 137 accept sign-ins"):
        load_settings(chains=[gated], chain_ids=[1, 10, 137])
    ungated_but_configured = {"chain_id": 10, "rpc_urls": ["https://rpc.example"]}
    with pytest.raises(SettingsError, match=r"chain\(s\) 10 accept sign-ins"):
        load_settings(chains=[gated, ungated_but_configured])
    assert load_settings(chains=[gated], chain_ids=[1]).chain_ids == [1]
    monkeypatch.setenv("PORTCULLIS_COMPLIANCE", "off")
    assert load_settings(chain_ids=[1, 10]).chain_ids == [1, 10]


def test_compliance_off_is_explicit_and_excludes_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    monkeypatch.setenv("PORTCULLIS_COMPLIANCE", "off")
    assert load_settings().compliance == "off"
    chain = {"chain_id": 1, "rpc_urls": ["https://rpc.example"]}
    assert load_settings(chains=[chain]).compliance == "off"  # contract wallets, no gate
    with pytest.raises(SettingsError, match=r"PORTCULLIS_COMPLIANCE: off, but chain 1 configures .*registry"):
        load_settings(chains=[chain | {"registry": REGISTRY}])
    monkeypatch.setenv("PORTCULLIS_COMPLIANCE", "maybe")
    with pytest.raises(SettingsError, match="PORTCULLIS_COMPLIANCE"):
        load_settings()


def test_development_still_starts_without_chains() -> None:
    assert load_settings(dev_chain=False).compliance == "required"


PRODUCTION_MISTAKES = {
    "PORTCULLIS_MODE": "production",
    "PORTCULLIS_PORT": "eighty",  # a bad value
    "PORTCULLIS_NONCE_TTL_SECONDS": "5",  # another, out of range
    "PORTCULLIS_REGISTRATION_ENABLED": "true",  # without its token
    "PORTCULLIS_CHAINS": '[{"chain_id": 8453, "rpc_urls": ["a"]}, {"chain_id": 8453, "rpc_urls": ["b"]}]',
    "PORTCULLIS_NO_SUCH_THING": "1",  # misspelt
    # and no PORTCULLIS_ISSUER, no PORTCULLIS_SECRET_KEY
}
EVERY_PROBLEM = [
    "PORTCULLIS_NO_SUCH_THING: unknown setting",
    "PORTCULLIS_PORT: Input should be a valid integer",
    "PORTCULLIS_NONCE_TTL_SECONDS: Input should be greater than or equal to 30",
    "PORTCULLIS_ISSUER: required in production",
    "PORTCULLIS_CHAINS: each chain_id may appear once",
    "PORTCULLIS_SECRET_KEY: required in production",
    "PORTCULLIS_REGISTRATION_INITIAL_ACCESS_TOKEN: required when registration_enabled is true",
    "PORTCULLIS_CHAINS: production needs at least one chain with a required compliance source",
]


def test_every_bad_setting_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_MISTAKES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PORTCULLIS_ISSUER", raising=False)
    monkeypatch.delenv("PORTCULLIS_SECRET_KEY", raising=False)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid settings: ")
    problems = message.removeprefix("invalid settings: ").split("; ")
    assert len(problems) == len(EVERY_PROBLEM), problems
    for expected, problem in zip(EVERY_PROBLEM, problems, strict=True):
        assert problem.startswith(expected), (expected, problem)


def test_production_start_up_names_every_problem_in_one_line(tmp_path: Path) -> None:
    """A real ``portcullis serve`` in production: one attempt, one line, every problem."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env |= {"PORTCULLIS_DATA_DIR": str(tmp_path), **PRODUCTION_MISTAKES}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("portcullis: invalid settings: ")
    for expected in EVERY_PROBLEM:
        assert expected in line, expected


def test_chains_can_come_from_a_file(tmp_path: Path) -> None:
    """PORTCULLIS_CHAINS_FILE (written by docker-compose.yml's deploy job): the same list, the same checks."""
    registry = "0x" + "ab" * 20
    chains = tmp_path / "chains.json"
    chains.write_text(f'[{{"chain_id": 31337, "rpc_urls": ["http://anvil:8545"], "registry": "{registry}"}}]')
    s = load_settings(chains_file=chains)
    assert [(c.chain_id, c.registry) for c in s.chains] == [(31337, registry)]
    assert s.chain_ids == [31337] and s.dev_chain is False

    chains.write_text('[{"chain_id": 0, "rpc_urls": ["http://anvil:8545"]}]')
    with pytest.raises(SettingsError, match=r"PORTCULLIS_CHAINS_FILE: .*chains.json: 0.chain_id: "):
        load_settings(chains_file=chains)
    with pytest.raises(SettingsError, match=r"PORTCULLIS_CHAINS_FILE: cannot read .*missing.json"):
        load_settings(chains_file=tmp_path / "missing.json")
    with pytest.raises(SettingsError, match="PORTCULLIS_CHAINS_FILE: set PORTCULLIS_CHAINS or"):
        load_settings(chains_file=chains, chains=[{"chain_id": 1, "rpc_urls": ["https://rpc.example"]}])
