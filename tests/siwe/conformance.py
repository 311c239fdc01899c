"""Loader for the shared EIP-4361 conformance vectors (spruceid/siwe ``test/`` folder).

The vectors live beside the checkout, in ``../shared/conformance/siwe`` relative to the project
root, on developer machines and in CI alike. When the folder is missing every vector test is
skipped with that reason rather than failing on an unrelated checkout layout.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.siwe import SiweMessage
from app.siwe.rfc3339 import parse_date_time

VECTORS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "siwe"
MISSING_REASON = f"EIP-4361 conformance vectors not found at {VECTORS_DIR}"

# camelCase keys of the vectors -> SiweMessage field names.
FIELD_NAMES = {
    "chainId": "chain_id",
    "issuedAt": "issued_at",
    "expirationTime": "expiration_time",
    "notBefore": "not_before",
    "requestId": "request_id",
}
# Keys of verification entries that are not message fields.
CONTROL_KEYS = {"signature", "time", "domainBinding", "matchNonce"}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS_DIR / name).read_text(encoding="utf-8"))
    return data


def params(name: str) -> list[Any]:
    """One pytest.param per entry of ``name``, id'd by the entry name; a skip when absent."""
    if not VECTORS_DIR.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=MISSING_REASON), id="missing")]
    return [pytest.param(key, value, id=key) for key, value in load(name).items()]


def fields_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The message fields of a vector entry, as SiweMessage keyword arguments."""
    fields: dict[str, Any] = {}
    for key, value in entry.items():
        if key in CONTROL_KEYS:
            continue
        if key == "resources":
            value = tuple(value)
        fields[FIELD_NAMES.get(key, key)] = value
    return fields


def message_of(entry: dict[str, Any]) -> SiweMessage:
    return SiweMessage(**fields_of(entry))


def time_of(entry: dict[str, Any], default: datetime) -> datetime:
    return parse_date_time(entry["time"]) if "time" in entry else default
