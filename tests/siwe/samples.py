"""Valid EIP-4361 messages to start tests from, and an unchecked renderer for broken ones."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.siwe import SiweMessage

ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"

FULL = SiweMessage(
    scheme="https",
    domain="login.example.com",
    address=ADDRESS,
    statement="Sign in to Portcullis: https://login.example.com/tos",
    uri="https://login.example.com/siwe",
    version="1",
    chain_id=1,
    nonce="a1B2c3D4e5F6g7H8",
    issued_at="2030-01-01T00:00:00.000Z",
    expiration_time="2030-01-01T00:10:00Z",
    not_before="2029-12-31T23:59:00Z",
    request_id="req-42",
    resources=(
        "https://login.example.com/tos",
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
    ),
)

MINIMAL = SiweMessage(
    domain="login.example.com",
    address=ADDRESS,
    uri="https://login.example.com/siwe",
    version="1",
    chain_id=1,
    nonce="a1B2c3D4",
    issued_at="2030-01-01T00:00:00Z",
)


def sample(base: SiweMessage = FULL, /, **changes: Any) -> SiweMessage:
    return dataclasses.replace(base, **changes)


def render_unchecked(message: SiweMessage) -> str:
    """The EIP-4361 layout of ``message`` without validating any field: for negative tests."""
    origin = message.domain if message.scheme is None else f"{message.scheme}://{message.domain}"
    lines = [f"{origin} wants you to sign in with your Ethereum account:", message.address, ""]
    if message.statement is not None:
        lines.append(message.statement)
    lines += [
        "",
        f"URI: {message.uri}",
        f"Version: {message.version}",
        f"Chain ID: {message.chain_id}",
        f"Nonce: {message.nonce}",
        f"Issued At: {message.issued_at}",
    ]
    if message.expiration_time is not None:
        lines.append(f"Expiration Time: {message.expiration_time}")
    if message.not_before is not None:
        lines.append(f"Not Before: {message.not_before}")
    if message.request_id is not None:
        lines.append(f"Request ID: {message.request_id}")
    if message.resources:
        lines.append("Resources:")
        lines += [f"- {resource}" for resource in message.resources]
    return "\n".join(lines)
