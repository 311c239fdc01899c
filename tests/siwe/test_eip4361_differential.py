"""EIP-4361 differential test: our parser and builder against siwe-py (ABNF and regex parsers).

Hypothesis generates valid messages (domains with ports and userinfo, EIP-55 addresses,
statements from the full allowed charset, URIs, chain ids up to 2**53 - 1, RFC 3339 times with
offsets and fractions, optional fields, resources). For each one: siwe-py parses our text to the
same fields with both of its parsers, and siwe-py's builder writes a text we parse to the same
fields (byte-identical to ours, since both follow the one canonical layout).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from app.siwe import SiweMessage, parse
from tests.siwe.strategies import messages

siwe = pytest.importorskip("siwe")

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ours_as_dict(message: SiweMessage) -> dict[str, Any]:
    return {
        "scheme": message.scheme,
        "domain": message.domain,
        "address": message.address,
        "statement": message.statement,
        "uri": message.uri,
        "version": message.version,
        "chain_id": message.chain_id,
        "nonce": message.nonce,
        "issued_at": message.issued_at,
        "expiration_time": message.expiration_time,
        "not_before": message.not_before,
        "request_id": message.request_id,
        "resources": message.resources,
    }


def theirs_as_dict(theirs: Any) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "scheme": theirs.scheme,
        "domain": theirs.domain,
        "address": theirs.address,
        "statement": theirs.statement,
        "uri": theirs.uri,
        "version": str(theirs.version),
        "chain_id": theirs.chain_id,
        "nonce": theirs.nonce,
        "issued_at": text(theirs.issued_at),
        "expiration_time": text(theirs.expiration_time),
        "not_before": text(theirs.not_before),
        "request_id": theirs.request_id,
        "resources": tuple(theirs.resources or ()),
    }


def siwe_py_parse(text: str, *, abnf: bool) -> Any:
    with warnings.catch_warnings():
        # The abnf package warns about siwe-py's grammar redefining core rules; not our concern.
        warnings.simplefilter("ignore")
        return siwe.SiweMessage.from_message(text, abnf=abnf)


@_SETTINGS
@given(messages())
def test_siwe_py_abnf_parser_reads_our_text_identically(message: SiweMessage) -> None:
    text = message.to_text()
    assert parse(text) == message
    assert theirs_as_dict(siwe_py_parse(text, abnf=True)) == ours_as_dict(message)


@_SETTINGS
@given(messages())
def test_siwe_py_regex_parser_reads_our_text_identically(message: SiweMessage) -> None:
    text = message.to_text()
    assert theirs_as_dict(siwe_py_parse(text, abnf=False)) == ours_as_dict(message)


@_SETTINGS
@given(messages())
def test_we_read_siwe_py_builder_text_identically(message: SiweMessage) -> None:
    fields = ours_as_dict(message)
    fields["resources"] = list(message.resources) or None
    text = siwe.SiweMessage(**fields).prepare_message()
    assert text == message.to_text()
    assert parse(text) == message
