"""contracts/artifacts/ is exactly what contracts/script/build.mjs makes from the committed sources, with the
pinned compiler; and the npm manifest pins every dependency."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ARTIFACTS = CONTRACTS / "artifacts"
BUILD = CONTRACTS / "script" / "build.mjs"
REBUILD_HINT = "run `node contracts/script/build.mjs` and commit contracts/artifacts/"


def _package() -> dict[str, str]:
    pins: dict[str, str] = json.loads((CONTRACTS / "package.json").read_text())["devDependencies"]
    return pins


def test_committed_artifacts_are_current(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: rebuilding the artifacts needs node 20+ and `npm ci --prefix contracts`"
        )
    if not (CONTRACTS / "node_modules" / "solc").is_dir():
        pytest.skip("contracts/node_modules is missing: run `npm ci --prefix contracts`")
    result = subprocess.run(
        [node, str(BUILD), "--out", str(tmp_path)], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr
    built = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_bytes() for p in ARTIFACTS.glob("*.json")}
    assert sorted(built) == sorted(committed), f"artifact set differs: {REBUILD_HINT}"
    stale = sorted(name for name in built if built[name] != committed[name])
    assert not stale, f"stale artifacts {stale}: {REBUILD_HINT}"


def test_artifacts_record_compiler_settings_and_source_hash() -> None:
    solc = _package()["solc"]
    artifacts = sorted(ARTIFACTS.glob("*.json"))
    names = {p.stem for p in artifacts}
    assert {"ComplianceRegistry", "IComplianceRegistry", "UniversalSigValidator", "OwnedWallet"} <= names
    for path in artifacts:
        artifact = json.loads(path.read_text())
        assert artifact["contractName"] == path.stem
        assert (CONTRACTS / artifact["sourceName"]).is_file()
        assert artifact["sourceName"] in artifact["sources"]
        assert artifact["compiler"]["version"].startswith(f"{solc}+commit.")
        assert artifact["compiler"]["npmPackage"] == f"solc@{solc}"
        assert artifact["settings"]["optimizer"] == {"enabled": True, "runs": 200}
        assert artifact["settings"]["evmVersion"] == "cancun"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", artifact["sourceHash"])
        assert re.fullmatch(r"0x([0-9a-f]{2})*", artifact["bytecode"])
        assert isinstance(artifact["abi"], list)


def test_dependencies_are_pinned_exactly_and_locked() -> None:
    pins = _package()
    assert set(pins) == {"solc", "@openzeppelin/contracts", "@foundry-rs/anvil"}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pins.values()), pins
    assert pins["solc"].startswith("0.8.")
    assert pins["@openzeppelin/contracts"].startswith("5.")
    lock = json.loads((CONTRACTS / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == pins
    for name, version in pins.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    # Everything `npm ci` fetches comes from the npm registry (no git, tarball or file URLs).
    for path, entry in lock["packages"].items():
        resolved = entry.get("resolved")
        assert resolved is None or resolved.startswith("https://registry.npmjs.org/"), (path, resolved)
        assert path == "" or "integrity" in entry, path
    assert "node_modules/" in (CONTRACTS / ".gitignore").read_text().split()
