"""/openapi.json: a valid OpenAPI 3.1 document naming every route the app serves, and no other.

The routes are read from the apps tests/test_docs.py builds (each configuration that changes the route
table), so a route added later fails here, by name, until app/http/openapi.py's table describes it.
"""

from __future__ import annotations

from pathlib import Path

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from app.http.openapi import OPERATIONS, document
from tests.conftest import Harness
from tests.test_docs import served_routes


def described(doc: dict[str, object]) -> set[tuple[str, str]]:
    paths = doc["paths"]
    assert isinstance(paths, dict)
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises on any structural problem
    broken = {**doc, "paths": {"/x/{a}": {"get": {"parameters": [{"name": "a"}]}}}}  # no "in"
    try:
        validate(broken)
    except OpenAPIValidationError:
        pass
    else:
        raise AssertionError("the validator accepted a parameter without its location")


def undescribed(served: dict[tuple[str, str], list[str]], doc: dict[str, object]) -> list[str]:
    return [
        f"{method} {path} (served in {', '.join(where)})"
        for (method, path), where in sorted(served.items())
        if (method, path) not in described(doc)
    ]


def test_every_served_route_is_described(tmp_path: Path) -> None:
    served = served_routes(tmp_path)
    assert ("POST", "/token") in served and ("GET", "/openapi.json") in served
    missing = undescribed(served, document())
    assert not missing, "app/http/openapi.py OPERATIONS does not describe: " + "; ".join(missing)


def test_a_route_missing_from_the_document_is_named(tmp_path: Path) -> None:
    served = {**served_routes(tmp_path), ("POST", "/no-such-route"): ["development"]}
    assert undescribed(served, document()) == ["POST /no-such-route (served in development)"]


def test_every_described_route_is_served(tmp_path: Path) -> None:
    stale = sorted(described(document()) - set(served_routes(tmp_path)))
    assert not stale, f"app/http/openapi.py OPERATIONS describes routes no configuration serves: {stale}"


def test_every_operation_answers_errors_as_rfc6749_json() -> None:
    doc = document()
    for path, ops in doc["paths"].items():  # type: ignore[union-attr]
        for method, op in ops.items():
            error = op["responses"]["default"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/OAuthError"}, (method, path)
    assert len(OPERATIONS) == len(described(doc))  # no row repeats another


async def test_openapi_json_is_served(harness: Harness) -> None:
    reply = await harness.client.get("/openapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == document()
