"""A reader for the repository's Dockerfile, enough for the tests of what it names: stages, their COPY
sources, ENTRYPOINT / CMD and the HEALTHCHECK (exec form, JSON arrays, as the Dockerfile writes them)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of each COPY from the build context (not ``--from=`` another stage)."""
        found = []
        for name, args in self.instructions:
            if name != "COPY":
                continue
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            found.append((paths[:-1], paths[-1]))
        return found

    def last(self, instruction: str) -> str | None:
        values = [args for name, args in self.instructions if name == instruction]
        return values[-1] if values else None

    def exec_form(self, instruction: str) -> list[str]:
        """The JSON-array arguments of the stage's last ``instruction`` (ENTRYPOINT, CMD)."""
        args = self.last(instruction)
        assert args is not None, f"stage {self.name} has no {instruction}"
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
        return value


def logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return lines


def stages(text: str | None = None) -> list[Stage]:
    found: list[Stage] = []
    for line in logical_lines(DOCKERFILE.read_text(encoding="utf-8") if text is None else text):
        name, _, args = line.partition(" ")
        name, args = name.upper(), args.strip()
        if name == "FROM":
            words = args.split()
            stage_name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(found))
            found.append(Stage(stage_name, words[0]))
        else:
            assert found, f"{name} before the first FROM"
            found[-1].instructions.append((name, args))
    return found


def stage(name: str) -> Stage:
    return next(s for s in stages() if s.name == name)
