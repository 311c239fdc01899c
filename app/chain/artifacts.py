"""Compiled contract artifacts (contracts/artifacts/*.json), loaded at run time: the server needs no node."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from app.shipped import contract_artifacts

ARTIFACTS_DIR = contract_artifacts()


@cache  # artifacts are immutable files shipped with the code, not state
def load(name: str) -> dict[str, Any]:
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        artifact: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeError(f"contract artifact {path} is missing (node contracts/script/build.mjs)") from None
    return artifact


def bytecode(name: str) -> bytes:
    return bytes.fromhex(load(name)["bytecode"].removeprefix("0x"))
