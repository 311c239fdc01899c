"""docker-compose.yml, the Dockerfile, deploy/nginx.conf and .env.example, proven without pulling an image
(this machine has no registry): every PORTCULLIS_* variable is a real setting and the values load, every
dependency exists and waits on a health check or a finished job, the image's entry point and the compose
commands are real commands of the CLI, the health probe answers against a real server, the COPY sources
exist and pass .dockerignore, and nginx accepts the proxy configuration.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli.main import build_parser
from app.settings import ENV_PREFIX, Settings, SettingsError, load_settings
from tests.dockerfile import ROOT, stage, stages
from tests.integration.server import ServerProcess, free_port

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PORTCULLIS_BIN = Path(sys.executable).with_name("portcullis")
# Bind-mount sources another branch adds (the wallet sign-in demo); once present they must hold a page.
PENDING_MOUNTS = {"./frontend-demo": "index.html"}
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def filled_env() -> dict[str, str]:
    """.env.example as an operator fills it in for the local stack."""
    example = env_example()
    return {**example, **{k: f"filled-{k.lower()}-" + "x" * 40 for k, v in example.items() if not v}}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} (empty counts as unset, as with the colon)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        current = env.get(name, "")
        if current:
            return current
        if op == "?":
            raise LookupError(f"{name}: {arg}")
        if op == "-":
            return arg
        return ""

    return VARIABLE.sub(one, value)


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    raw = compose()["services"][name].get("environment", {})
    return {k: interpolate(str(v), env) for k, v in raw.items()}


def uses_portcullis_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and build.get("target") == "portcullis"


# ---------------------------------------------------------------- settings and secrets


def test_every_portcullis_variable_is_a_real_setting() -> None:
    fields = set(Settings.model_fields)
    named = {k for svc in compose()["services"].values() for k in svc.get("environment", {})}
    named |= set(env_example())
    ours = sorted(k for k in named if k.startswith(ENV_PREFIX))
    assert "PORTCULLIS_TRUSTED_PROXIES" in ours and "PORTCULLIS_CHAINS_FILE" in ours
    unknown = [k for k in ours if k[len(ENV_PREFIX) :].lower() not in fields]
    assert unknown == [], f"not settings of app/settings.py: {unknown}"


def test_the_services_settings_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each service of the portcullis image starts with its environment: the values parse and pass the
    start-up checks (the chains file as the deploy job writes it)."""
    chains = tmp_path / "chains.json"
    chains.write_text(
        json.dumps([{"chain_id": 31337, "rpc_urls": ["http://anvil:8545"], "registry": "0x" + "1" * 40}])
    )
    services = {n: s for n, s in compose()["services"].items() if uses_portcullis_image(s)}
    assert set(services) == {"migrate", "deploy-contracts", "portcullis"}
    for name in services:
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        env = service_env(name, filled_env())
        if "PORTCULLIS_CHAINS_FILE" in env:
            env["PORTCULLIS_CHAINS_FILE"] = str(chains)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(data_dir=tmp_path / name)
        assert settings.database_url.startswith("postgresql+asyncpg://portcullis:")
        assert settings.redis_url is not None and settings.redis_url.startswith("redis://:")
        if name == "portcullis":
            assert [c.registry for c in settings.chains] == ["0x" + "1" * 40] and not settings.dev_chain
            assert settings.trusted_proxies == [ipaddress.ip_network(nginx_address())]
        if name == "deploy-contracts":
            assert settings.registry_key is not None and settings.chains[0].registry is None


def test_no_secret_is_written_in_the_files() -> None:
    """Secrets reach the services only through ${...} from .env; .env.example leaves them empty, and
    compose refuses to start (:?) while one is."""
    example = env_example()
    secrets = ["PORTCULLIS_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "ANVIL_DEPLOYER_KEY"]
    assert {k: example[k] for k in secrets} == dict.fromkeys(secrets, "")
    text = COMPOSE.read_text(encoding="utf-8")
    for name in secrets:
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} is not required by docker-compose.yml"
    for service in compose()["services"]:
        try:
            service_env(service, example)
        except LookupError as exc:
            assert str(exc).split(":")[0] in secrets
        else:
            assert service in {"anvil", "perps-api", "nginx"}, f"{service} starts without its secrets"


def test_production_refuses_the_example_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    example = {k: v for k, v in env_example().items() if k.startswith(ENV_PREFIX)}
    for key, value in {**example, "PORTCULLIS_MODE": "production"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "PORTCULLIS_SECRET_KEY: required in production" in str(refused.value)
    assert "PORTCULLIS_ISSUER: must use https in production" in str(refused.value)


# ---------------------------------------------------------------- services, health and order


def nginx_address() -> str:
    address: str = compose()["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    return address


def test_dependencies_wait_for_health_or_a_finished_job() -> None:
    services = compose()["services"]
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"migrate", "deploy-contracts"}
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name in one_shots:
            assert check == {"disable": True}, f"{name}: a one-shot job has no health (it exits)"
        else:
            assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: no health check"
        for target, how in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            wanted = "service_completed_successfully" if target in one_shots else "service_healthy"
            assert how == {"condition": wanted}, f"{name} -> {target}: {how}"
    assert services["portcullis"]["deploy"]["replicas"] == 2
    assert set(services["portcullis"]["depends_on"]) == {"postgres", "redis", "migrate", "deploy-contracts"}


def test_nginx_is_the_trusted_proxy_and_proxies_to_services_that_exist() -> None:
    document = compose()
    subnet = ipaddress.ip_network(document["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(nginx_address()) in subnet
    proxies = json.loads(document["services"]["portcullis"]["environment"]["PORTCULLIS_TRUSTED_PROXIES"])
    assert proxies == [f"{nginx_address()}/32"]
    upstreams = re.findall(r"set \$\w+ http://([\w-]+):(\d+);", NGINX_CONF.read_text(encoding="utf-8"))
    assert sorted(upstreams) == [("perps-api", "8100"), ("portcullis", "8000")]
    image_env = dict(
        re.findall(r"(\w+)=(\S+)", stage("portcullis").last("ENV") or "")  # ENV A=1 B=2 ...
    )
    assert image_env["PORTCULLIS_PORT"] == "8000" and stage("perps-api").last("EXPOSE") == "8100"
    issuer = env_example()["PORTCULLIS_ISSUER"]
    aliases = document["services"]["nginx"]["networks"]["default"]["aliases"]
    assert re.fullmatch(r"http://([\w.-]+):8080", issuer) and issuer.split("//")[1].split(":")[0] in aliases


def test_bind_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                continue  # a named volume
            path = ROOT / source
            if source in PENDING_MOUNTS and not path.exists():
                continue
            assert path.exists(), f"{name}: {source} is not in the repository"
            if source in PENDING_MOUNTS:
                assert (path / PENDING_MOUNTS[source]).is_file()


def test_anvil_is_the_release_the_contract_tests_use() -> None:
    pinned = json.loads((ROOT / "contracts" / "package.json").read_text())["devDependencies"][
        "@foundry-rs/anvil"
    ]
    image = compose()["services"]["anvil"]["image"]
    assert image == f"ghcr.io/foundry-rs/foundry:v{pinned}"


# ---------------------------------------------------------------- the image


def test_the_entry_point_and_every_compose_command_are_real_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    final = stages()[-1]
    assert final.name == "portcullis" and final.base == "python:3.11-slim"
    assert final.exec_form("ENTRYPOINT") == ["portcullis"] and final.exec_form("CMD") == ["serve"]
    assert final.last("USER") == "portcullis"
    # The installed console script, as the image runs it.
    done = subprocess.run(
        [str(PORTCULLIS_BIN), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: portcullis serve"), done.stderr
    # Each compose command, with its options, through the same parser (in process: a start costs seconds).
    commands = [s["command"] for s in compose()["services"].values() if uses_portcullis_image(s)]
    assert commands[1][:3] == ["registry", "deploy", "--chains-file"]
    for command in commands:
        assert callable(build_parser().parse_args(command).fn), command
    for bogus in (["sreve"], ["registry", "deploy", "--chain-files", "x"]):
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(bogus)
        assert refused.value.code == 2 and "usage: portcullis" in capsys.readouterr().err
    assert stage("perps-api").exec_form("ENTRYPOINT") == ["python", "-m", "perps_api"]


def dockerignore_allows(path: str) -> bool:
    """Whether .dockerignore (an allow-list after `*`) lets ``path`` into the build context."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    sources = [src for s in stages() for sources, _ in s.copies() for src in sources]
    assert "app" in sources and "contracts/artifacts" in sources and "policy" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert dockerignore_allows(source), f"COPY {source}: .dockerignore leaves it out"
    assert not dockerignore_allows(".env") and not dockerignore_allows(".venv")


def test_the_health_probe_answers_for_a_live_server_only(tmp_path: Path) -> None:
    """The image's HEALTHCHECK command (and compose's, the same probe) run against a real server."""
    probe = json.loads(stage("portcullis").last("HEALTHCHECK").split(" CMD ", 1)[1])  # type: ignore[union-attr]
    assert probe[0] == "python"
    compose_probe = compose()["services"]["portcullis"]["healthcheck"]["test"]
    assert compose_probe[0] == "CMD" and compose_probe[1] == "python"
    with ServerProcess(tmp_path, PORTCULLIS_DEV_CHAIN="false") as server:
        env = {**os.environ, "PORTCULLIS_PORT": str(server.port)}
        assert subprocess.run([sys.executable, *probe[1:]], env=env, timeout=10).returncode == 0
        at_8000 = compose_probe[2:][-1].replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
        assert subprocess.run([sys.executable, "-c", at_8000], timeout=10).returncode == 0
    closed = {**os.environ, "PORTCULLIS_PORT": str(free_port())}
    assert (
        subprocess.run([sys.executable, *probe[1:]], env=closed, capture_output=True, timeout=10).returncode
        != 0
    )


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt-get install -y nginx)")
def test_nginx_accepts_the_proxy_configuration(tmp_path: Path) -> None:
    done = subprocess.run(
        ["nginx", "-t", "-c", str(NGINX_CONF), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(NGINX_CONF.read_text().replace("listen 8080;", "listen 8080"))
    assert subprocess.run(
        ["nginx", "-t", "-c", str(broken), "-p", str(tmp_path)], capture_output=True
    ).returncode
