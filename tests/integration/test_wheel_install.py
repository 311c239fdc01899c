"""The built wheel works outside the checkout: built from exactly what the Dockerfile's build stage copies,
installed into a fresh virtualenv, run from an empty directory. The contract artifacts, the default policy,
the Alembic migrations and the page assets all come from the installed package (importlib.resources).

Slow-ish (about 20 s: a wheel build, a virtualenv, a migration and a server start with the embedded
development chain, which deploys the registry from the shipped artifacts).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from tests.dockerfile import ROOT, stage
from tests.integration.server import free_port

PUBLIC_CLIENT = {
    "client_id": "wheel-check",
    "redirect_uris": ["http://127.0.0.1:9/cb"],
    "token_endpoint_auth_method": "none",
}


def copy_build_context(src: Path) -> None:
    """What the Dockerfile's build stage COPYs from the context, to the same places (symlinks kept, as
    COPY keeps them)."""
    for sources, dest in stage("build").copies():
        for source in sources:
            origin = ROOT / source
            target = src / dest / origin.name if dest.endswith("/") else src / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(
                    origin, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                )
            else:
                shutil.copy2(origin, target)


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the fresh virtualenv, an empty working directory). The virtualenv holds only the wheel; the
    dependencies come from the test's own environment through a .pth line, which adds the directory to
    sys.path without running that directory's .pth files (so the checkout's editable install stays out)."""
    base = tmp_path_factory.mktemp("wheel")
    src, wheels, venv, work = base / "src", base / "wheels", base / "venv", base / "work"
    copy_build_context(src)
    env = clean_env()
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), str(src)], base, env)
    (wheel,) = wheels.glob("portcullis-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base, env)
    (Path(purelib.strip()) / "outer-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([*pip, "--python", str(python), "install", "-q", "--no-deps", str(wheel)], base, env)
    work.mkdir()
    yield venv, work


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTCULLIS_", "PYTHON"))}
    return {**env, "PORTCULLIS_LOG_LEVEL": "warning", **extra}


def test_the_package_and_its_data_come_from_the_wheel(installed: tuple[Path, Path]) -> None:
    venv, work = installed
    probe = (
        "import json, app; from app.chain import artifacts; from app.policy.model import DEFAULT_POLICY_PATH;"
        "from app.http.pages import ASSETS; from app.storage.migrate import alembic_config;"
        "from alembic.script import ScriptDirectory;"
        "print(json.dumps({'app': app.__file__, 'artifacts': str(artifacts.ARTIFACTS_DIR),"
        "'policy': str(DEFAULT_POLICY_PATH), 'assets': str(ASSETS),"
        "'abi': len(artifacts.load('ComplianceRegistry')['abi']),"
        "'head': ScriptDirectory.from_config(alembic_config()).get_current_head()}))"
    )
    found = json.loads(run([str(venv / "bin" / "python"), "-c", probe], work, clean_env()))
    site = str(venv.resolve())
    for key in ("app", "artifacts", "policy", "assets"):
        assert found[key].startswith(site), f"{key} read from {found[key]}, not from the installed wheel"
    assert found["abi"] > 0 and found["head"]
    version = run([str(venv / "bin" / "portcullis"), "--version"], work, clean_env())
    assert version.strip() == f"portcullis {metadata.version('portcullis')}"
    checked = run([str(venv / "bin" / "portcullis"), "policy", "check"], work, clean_env())
    assert checked.startswith(found["policy"]) and ": ok: " in checked


def test_migrate_and_serve_from_an_empty_directory(installed: tuple[Path, Path]) -> None:
    venv, work = installed
    (work / "clients.json").write_text(json.dumps([PUBLIC_CLIENT]))
    port = free_port()
    env = clean_env(
        PORTCULLIS_PORT=str(port), PORTCULLIS_DATA_DIR="var", PORTCULLIS_CLIENTS_FILE="clients.json"
    )
    portcullis = str(venv / "bin" / "portcullis")
    run([portcullis, "db", "upgrade"], work, env)
    assert (work / "var" / "portcullis.db").is_file()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([portcullis, "serve"], cwd=work, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"portcullis serve exited with {server.returncode}"
            assert time.monotonic() < deadline, "no /health within 60 s"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        discovery = httpx.get(f"{url}/.well-known/openid-configuration").json()
        assert discovery["issuer"] == url and discovery["jwks_uri"] == f"{url}/jwks"
        verifier = "v" * 43
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        page = httpx.get(
            f"{url}/authorize",
            params={
                "response_type": "code",
                "client_id": PUBLIC_CLIENT["client_id"],
                "redirect_uri": PUBLIC_CLIENT["redirect_uris"][0],
                "scope": "openid",
                "state": "s",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        # The page inlines its assets: each one, as the wheel shipped it, is in the served page.
        assets = ROOT / "app" / "http" / "assets"
        for name in ("signin.js", "keccak.js", "passkey.js", "pages.css"):
            assert (assets / name).read_text(encoding="utf-8").strip() in page.text, f"{name} not served"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0
