"""EIP-5573 ReCaps: the specification's published examples as vectors, then the strict refusals."""

from __future__ import annotations

import base64
import json

import pytest

from app import siwe
from app.siwe import recap

# EIP-5573, "ReCap SIWE Extension": the non-normative example message (its ReCap and statement).
SPEC_MESSAGE = """example.com wants you to sign in with your Ethereum account:
0x0000000000000000000000000000000000000000

I further authorize the stated URI to perform the following actions on my behalf: (1) 'example': 'append', 'read' for 'https://example.com'. (2) 'other': 'action' for 'https://example.com'. (3) 'example': 'append', 'delete' for 'my:resource:uri.1'. (4) 'example': 'append' for 'my:resource:uri.2'. (5) 'example': 'append' for 'my:resource:uri.3'.

URI: did:key:example
Version: 1
Chain ID: 1
Nonce: mynonce1
Issued At: 2022-06-21T12:00:00.000Z
Resources:
- urn:recap:eyJhdHQiOnsiaHR0cHM6Ly9leGFtcGxlLmNvbSI6eyJleGFtcGxlL2FwcGVuZCI6W10sImV4YW1wbGUvcmVhZCI6W10sIm90aGVyL2FjdGlvbiI6W119LCJteTpyZXNvdXJjZTp1cmkuMSI6eyJleGFtcGxlL2FwcGVuZCI6W10sImV4YW1wbGUvZGVsZXRlIjpbXX0sIm15OnJlc291cmNlOnVyaS4yIjp7ImV4YW1wbGUvYXBwZW5kIjpbXX0sIm15OnJlc291cmNlOnVyaS4zIjp7ImV4YW1wbGUvYXBwZW5kIjpbXX19LCJwcmYiOltdfQ"""  # noqa: E501

# EIP-5573, "ReCap Details Object Schema": the example object and the recap-uri it "is expected to
# transform into".
SPEC_OBJECT = {
    "att": {
        "https://example.com/pictures/": {"crud/delete": [{}], "crud/update": [{}], "other/action": [{}]},
        "mailto:username@example.com": {
            "msg/receive": [{"max_count": 5, "templates": ["newsletter", "marketing"]}],
            "msg/send": [{"to": "someone@email.com"}, {"to": "joe@email.com"}],
        },
    },
    "prf": ["zdj7Wj6FNS4rUUbsiJvjjxcsNqZdDCSiYR8sKQXfoPfpSZuAw"],
}
SPEC_URI = "urn:recap:eyJhdHQiOnsiaHR0cHM6Ly9leGFtcGxlLmNvbS9waWN0dXJlcy8iOnsiY3J1ZC9kZWxldGUiOlt7fV0sImNydWQvdXBkYXRlIjpbe31dLCJvdGhlci9hY3Rpb24iOlt7fV19LCJtYWlsdG86dXNlcm5hbWVAZXhhbXBsZS5jb20iOnsibXNnL3JlY2VpdmUiOlt7Im1heF9jb3VudCI6NSwidGVtcGxhdGVzIjpbIm5ld3NsZXR0ZXIiLCJtYXJrZXRpbmciXX1dLCJtc2cvc2VuZCI6W3sidG8iOiJzb21lb25lQGVtYWlsLmNvbSJ9LHsidG8iOiJqb2VAZW1haWwuY29tIn1dfX0sInByZiI6WyJ6ZGo3V2o2Rk5TNHJVVWJzaUp2amp4Y3NOcVpkRENTaVlSOHNLUVhmb1BmcFNadUF3Il19"  # noqa: E501


def uri_of(doc: object) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    return recap.PREFIX + raw.rstrip("=")


def test_spec_message_verifies() -> None:
    message = siwe.parse(SPEC_MESSAGE)
    found = recap.extract(message.statement, message.resources or ())
    assert list(found.att) == [
        "https://example.com",
        "my:resource:uri.1",
        "my:resource:uri.2",
        "my:resource:uri.3",
    ]
    assert recap.statement_for(found) == message.statement
    assert recap.encode_uri(found) == message.resources[-1]  # type: ignore[index]


def test_spec_object_encodes_to_the_spec_uri() -> None:
    decoded = recap.decode_uri(SPEC_URI)
    assert decoded.to_json() == SPEC_OBJECT
    assert recap.encode_uri(decoded) == SPEC_URI
    # The spec's own translation of this object spells 'recieve' and drops the path's final slash; the
    # algorithm it states gives this (the namespaces in key order, abilities joined by ", ").
    assert recap.translate(decoded) == (
        recap.PREAMBLE + " (1) 'crud': 'delete', 'update' for 'https://example.com/pictures/'."
        " (2) 'other': 'action' for 'https://example.com/pictures/'."
        " (3) 'msg': 'receive', 'send' for 'mailto:username@example.com'."
    )


def test_user_statement_before_the_translation() -> None:
    decoded = recap.decode_uri(SPEC_URI)
    statement = recap.statement_for(decoded, "Trade for me.")
    assert statement.startswith("Trade for me. I further authorize")
    assert recap.extract(statement, [SPEC_URI]).att == decoded.att
    with pytest.raises(recap.InvalidRecap, match="one space"):
        recap.extract("Trade for me." + recap.translate(decoded), [SPEC_URI])


@pytest.mark.parametrize(
    ("statement", "resources", "why"),
    [
        (None, [SPEC_URI], "statement does not end"),
        ("I agree.", [SPEC_URI], "statement does not end"),
        ("x", [], "final resource"),
        ("x", [SPEC_URI, "https://example.com"], "final resource"),
        ("x", [SPEC_URI, SPEC_URI], "only one"),
    ],
)
def test_statement_and_position_are_checked(statement: str | None, resources: list[str], why: str) -> None:
    with pytest.raises(recap.InvalidRecap, match=why):
        recap.extract(statement, resources)


def test_a_tampered_capability_no_longer_matches_the_statement() -> None:
    decoded = recap.decode_uri(SPEC_URI)
    statement = recap.statement_for(decoded)
    widened = json.loads(json.dumps(SPEC_OBJECT))
    widened["att"]["mailto:username@example.com"]["msg/send"] = [{}]  # any recipient now
    tampered = recap.encode_uri(recap.parse_details(widened))
    # The statement cannot show nota bene: only the message's signature, over the URI, protects them
    # (tests/oauth/test_delegations.py refuses a tampered ReCap by its signature).
    assert recap.translate(recap.decode_uri(tampered)) == statement
    other = json.loads(json.dumps(SPEC_OBJECT))
    mail = other["att"]["mailto:username@example.com"]
    other["att"]["mailto:username@example.com"] = {"msg/delete": [{}], **mail}
    with pytest.raises(recap.InvalidRecap, match="statement"):
        recap.extract(statement, [recap.encode_uri(recap.parse_details(other))])


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("urn:recap:" + "!!!", "base64url"),
        (uri_of(SPEC_OBJECT) + "=", "base64url"),
        ("urn:recap:eyJ", "base64url"),
        ("urn:recap:" + base64.urlsafe_b64encode(b'{"att":{},"att":{}}').decode().rstrip("="), "I-JSON"),
        (uri_of([1]), "JSON object"),
        (uri_of({"att": {}}), "non-empty"),
        (uri_of({"att": {"https://a": {"crud/read": [{}]}}, "ext": 1}), "unknown"),
        (uri_of({"att": {"https://b": {"x/y": [{}]}, "https://a": {"x/y": [{}]}}}), "order"),
        (uri_of({"att": {"https://a": {"x/z": [{}], "x/y": [{}]}}}), "order"),
        (uri_of({"att": {"https://a": {"x/y": [{"b": 1, "a": 2}]}}}), "order"),
        (uri_of({"att": {"nocolon": {"x/y": [{}]}}}), "not a URI"),
        (uri_of({"att": {"https://a": {"read": [{}]}}}), "ability"),
        (uri_of({"att": {"https://a": {"x/y": {}}}}), "array of objects"),
        (uri_of({"att": {"https://a": {"x/y": ["s"]}}}), "array of objects"),
        (uri_of({"att": {"https://a": {"x/y": [{}]}}, "prf": [1]}), "prf"),
        ("urn:recaps:abc", "not a ReCap"),
    ],
)
def test_strict_decoding(uri: str, why: str) -> None:
    with pytest.raises(recap.InvalidRecap, match=why):
        recap.decode_uri(uri)


def test_stray_trailing_bits_are_refused() -> None:
    canonical = uri_of({"att": {"https://a": {"x/y": [{}]}}})
    last = canonical[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for ch in alphabet:
        if ch == last:
            continue
        twin = canonical[:-1] + ch
        padded = twin[len(recap.PREFIX) :] + "=" * (-len(twin[len(recap.PREFIX) :]) % 4)
        if base64.urlsafe_b64decode(padded) == base64.urlsafe_b64decode(
            canonical[len(recap.PREFIX) :] + "=" * (-len(canonical[len(recap.PREFIX) :]) % 4)
        ):
            with pytest.raises(recap.InvalidRecap, match="canonical"):
                recap.decode_uri(twin)
            return
    pytest.skip("this payload's length leaves no unused bits")


def test_js_sort_order_puts_prefixes_first() -> None:
    assert sorted(["msg/send-to", "msg/send", "crud/update"], key=recap.js_sort_key) == [
        "crud/update",
        "msg/send",
        "msg/send-to",
    ]
