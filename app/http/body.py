"""Reading request bodies with a size cap and typed errors (never a 500 for a bad body)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from app.errors import InvalidRequest, PayloadTooLarge
from app.strict_json import JsonRejected, loads

MAX_BODY = 64 * 1024


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await read_body(request)
    if not raw.strip():
        if optional:
            return {}
        raise InvalidRequest("a JSON object body is required")
    try:
        value = loads(raw)  # RFC 7493: no repeated member, no lone surrogate, as read_form refuses repeats
    except JsonRejected as exc:
        raise InvalidRequest(f"the JSON body is refused: {exc.reason}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    return value


def string_field(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


async def read_form(request: Request) -> dict[str, str]:
    """application/x-www-form-urlencoded; RFC 6749 section 3.2: no parameter may appear twice."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    raw = await read_body(request)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    return _single_valued(pairs)


async def read_params(request: Request) -> dict[str, str]:
    """A request's parameters: the query string (GET) or the form body (POST); none may appear twice."""
    if request.method == "POST":
        return await read_form(request)
    return _single_valued(parse_qsl(request.url.query, keep_blank_values=True))


def _single_valued(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise InvalidRequest(f"parameter {key[:40]!r} appears more than once")
        params[key] = value
    return params
