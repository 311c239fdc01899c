"""The docs describe the app as it is: every HTTP route is in docs/API.md, every link stays in the repository.

Routes are read from apps built by ``create_app`` in each configuration that changes the route table
(development with the embedded chain adds ``/dev/chain/*``; production), walking mounts, so a route added
later fails here until API.md documents it. API.md writes each as `` `METHOD /path` `` (Starlette's path
template, e.g. `` `GET /register/{client_id}` ``); HEAD, which Starlette adds to every GET, is not listed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from starlette.routing import BaseRoute, Mount, Route

from app.http.app import create_app
from app.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
API_MD = ROOT / "docs" / "API.md"
ARCHITECTURE_MD = ROOT / "docs" / "ARCHITECTURE.md"
LINKED_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "contracts" / "README.md"]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DOCUMENTED_ROUTE = re.compile(r"`(" + "|".join(METHODS) + r") (/[^`\s]*)`")


def configurations(tmp_path: Path) -> dict[str, Settings]:
    # Each its own data dir: a development app holds its dev chain's journal from the moment it is built.
    def common(name: str) -> dict[str, object]:
        return {"data_dir": tmp_path / name, "rate_limits": False}

    return {
        "development+devchain": load_settings(**common("devchain"), dev_chain=True),
        "development": load_settings(**common("development"), dev_chain=False),
        "development+registration": load_settings(
            **common("registration"), registration_enabled=True, registration_initial_access_token="i" * 40
        ),
        "production": load_settings(
            **common("production"),
            mode="production",
            issuer="https://auth.example.com",
            secret_key="p" * 40,
            compliance="off",  # production without a chain: allowed with the gate off on purpose
        ),
    }


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through mounts; a mount without a router is one opaque path."""
    for route in routes:
        if isinstance(route, Mount):
            inner = route.routes
            if inner:
                yield from walk(list(inner), prefix + route.path)
            else:
                yield "GET", prefix + route.path
        elif isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield method, prefix + route.path
        else:  # a WebSocketRoute or a custom route: API.md has no form for it yet, so refuse it here
            raise AssertionError(f"route kind {type(route).__name__} at {getattr(route, 'path', '?')}")


def served_routes(tmp_path: Path) -> dict[tuple[str, str], list[str]]:
    """Every (method, path) of any configuration, with the configurations that serve it."""
    served: dict[tuple[str, str], list[str]] = {}
    for name, settings in configurations(tmp_path).items():
        for key in walk(create_app(settings).routes):
            served.setdefault(key, []).append(name)
    return served


def documented_routes(text: str) -> set[tuple[str, str]]:
    return {(m.group(1), m.group(2)) for m in DOCUMENTED_ROUTE.finditer(text)}


def undocumented(served: dict[tuple[str, str], list[str]], text: str) -> list[str]:
    documented = documented_routes(text)
    return [
        f"`{method} {path}` (served in {', '.join(where)})"
        for (method, path), where in sorted(served.items())
        if (method, path) not in documented
    ]


def test_every_route_of_every_configuration_is_in_api_md(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    assert ("POST", "/token") in served and ("POST", "/dev/chain/rpc") in served  # the walk finds them
    missing = undocumented(served, API_MD.read_text(encoding="utf-8"))
    assert not missing, "docs/API.md does not document: " + "; ".join(missing)


def test_api_md_names_no_route_the_app_does_not_serve(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    stale = sorted(documented_routes(API_MD.read_text(encoding="utf-8")) - set(served))
    assert not stale, f"docs/API.md documents routes no configuration serves: {stale}"


def test_an_undocumented_route_is_caught(tmp_path: Path) -> None:
    """The check can fail: with one route's every mention removed from API.md, it names that route."""
    served = served_routes(tmp_path)
    text = API_MD.read_text(encoding="utf-8").replace("`POST /revoke`", "")
    everywhere = ", ".join(served["POST", "/revoke"])
    assert undocumented(served, text) == [f"`POST /revoke` (served in {everywhere})"]
    extra = {**served, ("POST", "/no-such-route"): ["development"]}
    assert "`POST /no-such-route` (served in development)" in undocumented(extra, text)


# Markdown inline links and images, [text](target) / ![alt](target), and reference definitions [id]: target.
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
# A path outside the checkout written anywhere in a doc: a sibling folder or a machine's own directories.
OUTSIDE_PATH = re.compile(r"(?<![\w.])\.\./shared\b|(?<![\w/.~-])/(?:work|home|Users|root|mnt)/[\w.-]+")


FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def anchors(text: str) -> set[str]:
    """The fragment ids GitHub gives a document's headings (lower case, punctuation dropped, spaces to -)."""
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def links(text: str) -> list[str]:
    return [m.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK) for m in pattern.finditer(text)]


def link_problem(doc: Path, target: str) -> str | None:
    """Why ``target``, a link in ``doc``, does not resolve to a file (and heading) in the repository."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https", "mailto"):
        return None  # a public address, not a path
    if parts.scheme or parts.netloc:
        return f"{target}: not a repository path"
    if parts.path.startswith("/"):
        return f"{target}: an absolute path"
    resolved = (doc.parent / unquote(parts.path)).resolve() if parts.path else doc
    if not resolved.is_relative_to(ROOT):
        return f"{target}: points outside the repository"
    if not resolved.exists():
        return f"{target}: no such file in the repository"
    headed = resolved.suffix == ".md"
    if parts.fragment and headed and parts.fragment not in anchors(resolved.read_text(encoding="utf-8")):
        return f"{target}: no heading with that anchor"
    return None


def doc_problems(doc: Path, text: str) -> list[str]:
    where = doc.relative_to(ROOT)
    found = [f"{where}: {p}" for t in links(text) if (p := link_problem(doc, t)) is not None]
    found += [f"{where}: names {m.group(0)!r}, outside the repository" for m in OUTSIDE_PATH.finditer(text)]
    return found


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(doc: Path) -> None:
    assert doc_problems(doc, doc.read_text(encoding="utf-8")) == []


def test_a_link_out_of_the_repository_is_caught() -> None:
    doc = ROOT / "README.md"
    text = (
        "See [style](../shared/STYLE.md), [abs](/work/main/README.md), [gone](MISSING.md), "
        "[ok](docs/CLIENTS.md#client-secrets), [here](#tests-checks-benchmarks), [nowhere](#no-such-part), "
        "[gone](docs/API.md#tokenz), [web](https://www.rfc-editor.org/rfc/rfc6749)\n"
        "[ref]: ../../outside.md\n"
        "Vectors are read from `../shared/conformance/siwe/`; run `cd /work/main`.\n"
    )
    assert doc_problems(doc, text) == [
        "README.md: ../shared/STYLE.md: points outside the repository",
        "README.md: /work/main/README.md: an absolute path",
        "README.md: MISSING.md: no such file in the repository",
        "README.md: #no-such-part: no heading with that anchor",
        "README.md: docs/API.md#tokenz: no heading with that anchor",
        "README.md: ../../outside.md: points outside the repository",
        "README.md: names '../shared', outside the repository",
        "README.md: names '/work/main', outside the repository",
        "README.md: names '../shared', outside the repository",
        "README.md: names '/work/main', outside the repository",
    ]


# A module line of ARCHITECTURE.md's tree: an indented name ending in .py or /, or several joined by ", ".
MODULE_LINE = re.compile(r"^(\s+)([\w*]+(?:\.py|/)(?:,\s*[\w*]+(?:\.py|/))*)(?=\s|$)")


def architecture_modules(text: str) -> list[str]:
    """The paths (relative to the repository) that ARCHITECTURE.md's ``app/`` tree names."""
    block = text.split("```\napp/\n", 1)[1].split("```", 1)[0]
    named: list[str] = []
    parents: list[tuple[int, str]] = [(0, "app/")]
    for line in block.splitlines():
        match = MODULE_LINE.match(line)
        if match is None:
            continue  # a continuation of the previous line's description
        indent = len(match.group(1))
        while parents and parents[-1][0] >= indent and len(parents) > 1:
            parents.pop()
        base = parents[-1][1]
        for name in re.split(r",\s*", match.group(2)):
            named.append(base + name)
            if name.endswith("/"):
                parents.append((indent, base + name))
    return named


def test_architecture_names_only_modules_that_exist() -> None:
    named = architecture_modules(ARCHITECTURE_MD.read_text(encoding="utf-8"))
    assert "app/oauth/token_endpoint.py" in named and "app/http/registration.py" in named
    missing = [n for n in named if not any(ROOT.glob(n.rstrip("/")))]
    assert not missing, f"docs/ARCHITECTURE.md names modules that are not in app/: {missing}"


def test_every_package_of_app_is_in_architecture() -> None:
    named = {n.rstrip("/") for n in architecture_modules(ARCHITECTURE_MD.read_text(encoding="utf-8"))}
    packages = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "app").iterdir() if p.is_dir() and any(p.glob("*.py"))
    )
    assert [p for p in packages if p not in named] == []
