"""EIP-4361 message format: the shared parsing vectors, our limits and policies, the builder."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.siwe import MalformedMessage, SiweMessage, parse
from app.siwe import message as message_module
from app.siwe.fields import MAX_CHAIN_ID
from app.siwe.message import parse_by_lines
from tests.siwe import conformance
from tests.siwe.samples import ADDRESS, FULL, MINIMAL, render_unchecked, sample
from tests.siwe.strategies import messages


def refuse(text: str, *, match: str | None = None, **limits: int) -> MalformedMessage:
    """Both parsers refuse ``text`` with the same description; returns the error."""
    with pytest.raises(MalformedMessage, match=match) as fast:
        parse(text, **limits)
    with pytest.raises(MalformedMessage) as slow:
        parse_by_lines(text, **limits)
    assert fast.value.description == slow.value.description
    assert fast.value.code == "malformed_message"
    assert fast.value.status == 400
    return fast.value


def accept(text: str) -> SiweMessage:
    """Both parsers accept ``text`` with the same fields, and the builder gives the text back."""
    message = parse(text)
    assert parse_by_lines(text) == message
    assert message.to_text() == text
    return message


# --- shared conformance vectors -------------------------------------------------------------


@pytest.mark.parametrize(("name", "entry"), conformance.params("parsing_positive.json"))
def test_parsing_positive_vector(name: str, entry: dict[str, Any]) -> None:
    message = accept(entry["message"])
    expected = conformance.fields_of(entry["fields"])
    for field, value in expected.items():
        assert getattr(message, field) == value, field
    # Fields the vector leaves out are absent.
    for field in {"scheme", "statement", "expiration_time", "not_before", "request_id"} - set(expected):
        assert getattr(message, field) is None, field
    if "resources" not in expected:
        assert message.resources == ()


@pytest.mark.parametrize(("name", "text"), conformance.params("parsing_negative.json"))
def test_parsing_negative_vector(name: str, text: str) -> None:
    refuse(text)


# Entries naming a missing required field cannot reach to_text: SiweMessage's required fields are
# constructor arguments, so building the object already fails (TypeError) before any validation.
_MISSING_FIELD_ENTRIES = {
    "missing domain",
    "missing address",
    "missing uri",
    "missing version",
    "missing chainId",
    "missing nonce",
    "missing issuedAt",
}


@pytest.mark.parametrize(("name", "entry"), conformance.params("parsing_negative_objects.json"))
def test_parsing_negative_object_vector(name: str, entry: dict[str, Any]) -> None:
    if name in _MISSING_FIELD_ENTRIES:
        with pytest.raises(TypeError):
            conformance.message_of(entry)
        return
    message = conformance.message_of(entry)
    with pytest.raises(MalformedMessage):
        message.to_text()


# --- layout: line endings, order, blank lines -------------------------------------------------


def test_full_and_minimal_samples_round_trip() -> None:
    for message in (FULL, MINIMAL):
        assert render_unchecked(message) == message.to_text()
        assert accept(message.to_text()) == message


def test_crlf_is_refused() -> None:
    refuse(FULL.to_text().replace("\n", "\r\n"), match="CR")


def test_lone_cr_is_refused() -> None:
    refuse(FULL.to_text() + "\r", match="CR")


@pytest.mark.parametrize("base", [FULL, MINIMAL], ids=["full", "minimal"])
def test_trailing_newline_is_refused(base: SiweMessage) -> None:
    refuse(base.to_text() + "\n", match="ends with a newline")


def test_leading_newline_is_refused() -> None:
    refuse("\n" + MINIMAL.to_text())


def test_empty_text_is_refused() -> None:
    refuse("")


def test_non_text_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="must be text"):
        parse(FULL.to_text().encode())  # type: ignore[arg-type]


def test_header_must_be_exact() -> None:
    text = MINIMAL.to_text()
    refuse(text.replace("wants you to sign in", "wants you to log in"))
    refuse(text.replace("Ethereum account:", "ethereum account:"))
    refuse(text.replace(" wants", "  wants"))


def test_field_prefixes_are_case_sensitive() -> None:
    refuse(MINIMAL.to_text().replace("Chain ID: ", "Chain Id: "))
    refuse(MINIMAL.to_text().replace("URI: ", "URI:"))


def test_unknown_field_is_refused() -> None:
    refuse(MINIMAL.to_text() + "\nColor: blue", match="unexpected")


def test_duplicate_optional_field_is_refused() -> None:
    refuse(FULL.to_text().replace("Request ID: req-42", "Request ID: req-42\nRequest ID: req-43"))


def test_missing_blank_line_after_address_is_refused() -> None:
    refuse(MINIMAL.to_text().replace(f"{ADDRESS}\n\n\n", f"{ADDRESS}\n\n"))


def test_missing_blank_line_after_statement_is_refused() -> None:
    text = FULL.to_text()
    assert FULL.statement is not None
    refuse(text.replace(FULL.statement + "\n\n", FULL.statement + "\n"))


# --- limits, checked before any parsing -------------------------------------------------------


def test_oversize_message_is_refused_before_parsing() -> None:
    # Broken everywhere, yet the size error is the one reported: nothing was parsed.
    error = refuse("x" * 9000)
    assert "9000 bytes" in error.description


def test_size_limit_counts_utf8_bytes() -> None:
    text = "é" * 5000  # 5000 characters, 10000 bytes
    assert "10000 bytes" in refuse(text).description


def test_size_limit_is_configurable() -> None:
    text = FULL.to_text()
    size = len(text.encode())
    assert accept(text) == parse(text, max_bytes=size)
    refuse(text, max_bytes=size - 1, match="above the limit")


def test_too_many_resources_refused_before_parsing() -> None:
    text = sample(resources=tuple(f"https://r.example/{i}" for i in range(65))).to_text()
    refuse(text, match="more than the limit of 64")
    refuse("garbage\n- a\n- b\n- c", max_resources=2, match="more than the limit of 2")


def test_resource_limit_is_inclusive() -> None:
    text = sample(resources=tuple(f"https://r.example/{i}" for i in range(64))).to_text()
    assert len(accept(text).resources) == 64
    assert len(parse(text, max_resources=64).resources) == 64
    refuse(text, max_resources=63)


# --- field rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "example.com",
        "localhost",
        "localhost:8080",
        "127.0.0.1",
        "[::1]:443",
        "[2001:db8::8a2e:370:7334]",
        "[::ffff:192.0.2.1]",
        "[v1.fe80::a+en1]",
        "xn--bcher-kva.example",
        "under_score.example",
        "pct%41encoded.example",
        "user@example.com",
        "user:pass@example.com:65535",
    ],
)
def test_domain_authorities_accepted(domain: str) -> None:
    assert accept(sample(domain=domain).to_text()).domain == domain


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "example.com/path",
        "example.com?q",
        "exa mple.com",
        "example.com:",
        "example.com:65536",
        "example.com:123456",
        "[::1",
        "[not-ipv6]",
        "@example.com:x",
        "ex%4",
        "exämple.com",
    ],
)
def test_domain_non_authorities_refused(domain: str) -> None:
    refuse(render_unchecked(sample(domain=domain)))
    with pytest.raises(MalformedMessage):
        sample(domain=domain).to_text()


@pytest.mark.parametrize("scheme", ["https", "http", "chrome-extension", "a+b.c-d", "HTTPS"])
def test_scheme_prefix_accepted(scheme: str) -> None:
    assert accept(sample(scheme=scheme).to_text()).scheme == scheme


@pytest.mark.parametrize("scheme", ["", "1https", "ht tp", "ht_tp"])
def test_bad_scheme_refused(scheme: str) -> None:
    refuse(render_unchecked(sample(scheme=scheme)))
    with pytest.raises(MalformedMessage, match="scheme"):
        sample(scheme=scheme).to_text()


@pytest.mark.parametrize(
    "address",
    [
        ADDRESS.lower(),
        "0x" + ADDRESS[2:].upper(),
        "0X" + ADDRESS[2:],
        ADDRESS[:-1],
        ADDRESS + "0",
        ADDRESS[:-1] + "g",
        ADDRESS.replace("C02aaA", "c02aaA"),
    ],
    ids=["lowercase", "uppercase", "0X-prefix", "short", "long", "non-hex", "one-case-flipped"],
)
def test_address_must_be_eip55(address: str) -> None:
    refuse(render_unchecked(sample(address=address)), match="address")
    with pytest.raises(MalformedMessage, match="address"):
        sample(address=address).to_text()


def test_address_without_letters_is_its_own_checksum() -> None:
    digits_only = "0x" + "1234567890" * 4
    assert accept(sample(address=digits_only).to_text()).address == digits_only


@pytest.mark.parametrize(
    "statement",
    ["a", "Sign in: https://x.example/tos?a=1#b", "!$&'()*+,;=:/?#[]@-._~ 0123456789 AZaz"],
)
def test_statement_charset_accepted(statement: str) -> None:
    assert accept(sample(statement=statement).to_text()).statement == statement


@pytest.mark.parametrize("statement", ['say "hi"', "100%", "tab\there", "café", "a<b>", "back\\slash", "{x}"])
def test_statement_outside_charset_refused(statement: str) -> None:
    refuse(render_unchecked(sample(statement=statement)), match="statement")
    with pytest.raises(MalformedMessage, match="statement"):
        sample(statement=statement).to_text()


def test_empty_statement_is_refused_both_ways() -> None:
    # EIP-4361's `statement = *(...)` inside `[ statement LF ]` would make "address, three blank
    # lines" a second encoding of "no statement". We refuse it (see app.siwe.fields).
    text = MINIMAL.to_text().replace(f"{ADDRESS}\n\n\n", f"{ADDRESS}\n\n\n\n")
    refuse(text)
    with pytest.raises(MalformedMessage, match="statement"):
        sample(MINIMAL, statement="").to_text()


def test_statement_may_look_like_a_field() -> None:
    statement = "URI: https://evil.example"
    assert accept(sample(statement=statement).to_text()).statement == statement


@pytest.mark.parametrize(
    "uri",
    [
        "https://login.example.com",
        "https://login.example.com:8443/a/b?c=d&e=%20#frag",
        "http://user:pw@[::1]:80/",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "did:pkh:eip155:1:0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "mailto:a@example.com",
        "file:///etc/hosts",
        "a:",
    ],
)
def test_rfc3986_uris_accepted(uri: str) -> None:
    message = accept(sample(uri=uri, resources=(uri,)).to_text())
    assert message.uri == uri
    assert message.resources == (uri,)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "//no-scheme.example",
        "/relative",
        "https://a b",
        "https://x/%zz",
        "1http://x",
        "https://x/\x7f",
        "https://[::1",
    ],
)
def test_non_uris_refused(uri: str) -> None:
    refuse(render_unchecked(sample(uri=uri)), match="uri")
    refuse(render_unchecked(sample(resources=("https://ok.example", uri))), match="resource 2")
    with pytest.raises(MalformedMessage):
        sample(uri=uri).to_text()


def test_resources_header_without_entries_is_refused() -> None:
    refuse(MINIMAL.to_text() + "\nResources:", match="at least one")


def test_resource_needs_dash_space() -> None:
    refuse(MINIMAL.to_text() + "\nResources:\n-https://x.example")
    refuse(MINIMAL.to_text() + "\nResources:\n -https://x.example")


@pytest.mark.parametrize("version", ["2", "01", "1.0", " 1", ""])
def test_version_must_be_1(version: str) -> None:
    refuse(render_unchecked(sample(version=version)), match="ersion")


@pytest.mark.parametrize("chain_id", ["1", "137", "42161", str(MAX_CHAIN_ID)])
def test_chain_ids_accepted(chain_id: str) -> None:
    text = MINIMAL.to_text().replace("Chain ID: 1", f"Chain ID: {chain_id}")
    assert accept(text).chain_id == int(chain_id)


@pytest.mark.parametrize(
    "chain_id",
    [
        "0",
        "01",
        "-1",
        "+1",
        "1.0",
        "0x1",
        " 1",
        "1 ",
        "",
        str(MAX_CHAIN_ID + 1),
        "9" * 17,
        "9" * 5000,
        "\u0661",
    ],
)
def test_bad_chain_ids_refused(chain_id: str) -> None:
    refuse(MINIMAL.to_text().replace("Chain ID: 1", f"Chain ID: {chain_id}"), match="chain id")


@pytest.mark.parametrize("chain_id", [0, -1, MAX_CHAIN_ID + 1, True, "1", 1.0])
def test_builder_refuses_bad_chain_ids(chain_id: object) -> None:
    with pytest.raises(MalformedMessage, match="chain id"):
        sample(chain_id=chain_id).to_text()


@pytest.mark.parametrize("nonce", ["abcd1234", "A" * 128, "0" * 8])
def test_nonces_accepted(nonce: str) -> None:
    assert accept(sample(nonce=nonce).to_text()).nonce == nonce


@pytest.mark.parametrize("nonce", ["abc1234", "A" * 129, "abcd-1234", "abcd 1234", "abcdé1234", ""])
def test_bad_nonces_refused(nonce: str) -> None:
    refuse(render_unchecked(sample(nonce=nonce)), match="nonce")
    with pytest.raises(MalformedMessage, match="nonce"):
        sample(nonce=nonce).to_text()


@pytest.mark.parametrize(
    ("stamp", "instant"),
    [
        ("2021-09-30T16:25:24Z", datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)),
        ("2021-09-30T16:25:24.000Z", datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)),
        ("2021-09-30T16:25:24.5Z", datetime(2021, 9, 30, 16, 25, 24, 500000, tzinfo=UTC)),
        ("2021-09-30T16:25:24.123456789Z", datetime(2021, 9, 30, 16, 25, 24, 123456, tzinfo=UTC)),
        ("2021-09-30T16:25:24-02:00", datetime(2021, 9, 30, 18, 25, 24, tzinfo=UTC)),
        ("2021-09-30T16:25:24+23:59", datetime(2021, 9, 29, 16, 26, 24, tzinfo=UTC)),
        ("2021-09-30t16:25:24z", datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_accepted(stamp: str, instant: datetime) -> None:
    message = accept(sample(issued_at=stamp, expiration_time=stamp, not_before=stamp).to_text())
    assert message.issued_at == stamp  # the signed string is kept verbatim
    for value in (message.issued_at_dt(), message.expiration_time_dt(), message.not_before_dt()):
        assert value == instant
        assert value is not None and value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "stamp",
    [
        "2022-02-31T17:09:38.578Z",
        "2023-02-29T00:00:00Z",
        "2021-13-01T00:00:00Z",
        "2021-09-30T24:00:00Z",
        "2021-09-30T16:60:00Z",
        "2021-09-30T16:25:60Z",
        "2021-09-30T16:25:24",
        "2021-09-30 16:25:24Z",
        "2021-09-30T16:25Z",
        "2021-09-30T16:25:24.Z",
        "2021-09-30T16:25:24+24:00",
        "2021-09-30T16:25:24+02:60",
        "2021-09-30T16:25:24+0200",
        "21-09-30T16:25:24Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "Wed Oct 05 2011 16:48:00 GMT+0200 (CEST)",
    ],
)
def test_bad_timestamps_refused(stamp: str) -> None:
    for field, name in (
        ("issued_at", "issued at"),
        ("expiration_time", "expiration time"),
        ("not_before", "not before"),
    ):
        message = sample(**{field: stamp})
        refuse(render_unchecked(message), match=name)
        with pytest.raises(MalformedMessage, match=name):
            message.to_text()


def test_time_helpers_on_absent_fields() -> None:
    assert MINIMAL.expiration_time_dt() is None
    assert MINIMAL.not_before_dt() is None
    assert MINIMAL.issued_at_dt() == datetime(2030, 1, 1, tzinfo=UTC)


def test_time_helpers_return_aware_utc() -> None:
    message = sample(issued_at="2030-01-01T05:30:00+05:30")
    assert message.issued_at_dt() == datetime(2030, 1, 1, tzinfo=UTC)
    assert message.issued_at_dt().tzinfo is UTC


@pytest.mark.parametrize("request_id", ["", "abc", "a-b.c_d~e!$&'()*+,;=:@%20"])
def test_request_ids_accepted(request_id: str) -> None:
    assert accept(sample(request_id=request_id).to_text()).request_id == request_id


@pytest.mark.parametrize("request_id", ["a b", "a/b", "a?b", "a#b", "%zz", "é"])
def test_bad_request_ids_refused(request_id: str) -> None:
    refuse(render_unchecked(sample(request_id=request_id)), match="request id")
    with pytest.raises(MalformedMessage, match="request id"):
        sample(request_id=request_id).to_text()


def test_builder_refuses_non_string_fields() -> None:
    for field in ("domain", "address", "uri", "version", "nonce", "issued_at", "statement", "request_id"):
        with pytest.raises(MalformedMessage, match="must be a string"):
            sample(**{field: 1}).to_text()
    with pytest.raises(MalformedMessage, match="must be a string"):
        sample(resources=("https://ok.example", 7)).to_text()
    with pytest.raises(MalformedMessage, match="sequence"):
        sample(resources="https://ok.example").to_text()


def test_message_is_immutable_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FULL.nonce = "other123"  # type: ignore[misc]
    assert {FULL: 1}[parse(FULL.to_text())] == 1


# --- the two parsers agree --------------------------------------------------------------------

_TEXTS = [FULL.to_text(), MINIMAL.to_text(), sample(scheme=None, statement=None, resources=()).to_text()]
_ALPHABET = "\n\r :/-.@[]%0aAzZ9T#?é"


@st.composite
def _mutated_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "swap-lines"]))
        if action == "insert":
            text = text[:position] + draw(st.sampled_from(_ALPHABET)) + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        elif action == "replace":
            text = text[:position] + draw(st.sampled_from(_ALPHABET)) + text[position + 1 :]
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


def _assert_parsers_agree(text: str) -> None:
    try:
        fast: SiweMessage | str = parse(text)
    except MalformedMessage as exc:
        fast = exc.description
    try:
        slow: SiweMessage | str = parse_by_lines(text)
    except MalformedMessage as exc:
        slow = exc.description
    assert fast == slow
    if isinstance(fast, SiweMessage):
        assert fast.to_text() == text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_texts())
def test_fast_and_line_parsers_agree_on_edited_samples(text: str) -> None:
    _assert_parsers_agree(text)


_ACTIONS = ["insert", "delete", "replace"]
_edits = st.lists(
    st.tuples(st.integers(0, 2000), st.sampled_from(_ALPHABET), st.sampled_from(_ACTIONS)), max_size=3
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), _edits)
def test_fast_and_line_parsers_agree_on_edited_random_messages(
    message: SiweMessage, edits: list[tuple[int, str, str]]
) -> None:
    text = message.to_text()
    for position, char, action in edits:
        position %= len(text) + 1
        if action == "insert":
            text = text[:position] + char + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + 1 :]
        else:
            text = text[:position] + char + text[position + 1 :]
    _assert_parsers_agree(text)


def test_fast_path_never_accepts_what_it_cannot_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    # If the expression and the line walker ever disagreed on a text the walker accepts, parse
    # must still refuse rather than return an unchecked message.
    monkeypatch.setattr(message_module, "_MESSAGE", re.compile(r"(?!)"))
    with pytest.raises(MalformedMessage, match="does not follow the EIP-4361 grammar"):
        parse(FULL.to_text())
