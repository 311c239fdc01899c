"""docs/AUDIT.md's event catalogue documents every event type the code writes (app.audit.events)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.audit import events

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = re.compile(r"^\| `([a-z_]+\.[a-z_]+)` \| (success|failure|success / failure) \| .+ \| .+ \|$")


def documented() -> list[str]:
    text = (ROOT / "docs" / "AUDIT.md").read_text()
    section = text.split("## Event catalogue", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := CATALOGUE.match(line))]


def written_types() -> dict[str, str]:
    """Every event type an ``auditor.event(TYPE, ...)`` call in app/ names, with where it is written."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr != "event" or not node.args:
                continue
            first = node.args[0]
            if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name):
                if first.value.id == "events":
                    found[getattr(events, first.attr)] = f"{path.relative_to(ROOT)}:{node.lineno}"
            elif isinstance(first, ast.Constant) and isinstance(first.value, str):
                found[first.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
            elif isinstance(first, ast.Name) and first.id != "type":
                found[f"<{first.id}>"] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return found


def test_every_event_type_is_documented_with_its_fields() -> None:
    docs = documented()
    missing = [t for t in events.EVENT_TYPES if t not in docs]
    assert missing == [], f"add these to docs/AUDIT.md's event catalogue (with their fields): {missing}"
    assert len(docs) == len(set(docs)), "a type is documented twice"
    undocumented_extra = [t for t in docs if t not in events.EVENT_TYPES]
    assert undocumented_extra == [], f"documented but never written: {undocumented_extra}"


def test_the_event_list_holds_every_type_the_code_writes() -> None:
    written = written_types()
    assert len(written) >= 20  # the walk found the event calls
    stray = {t: where for t, where in written.items() if t not in events.EVENT_TYPES}
    assert stray == {}, f"event types written but not in app.audit.events.EVENT_TYPES: {stray}"
    constants = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+\.[a-z_]+", value)
    }
    assert constants == set(events.EVENT_TYPES)
