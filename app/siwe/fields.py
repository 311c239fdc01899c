"""EIP-4361 message fields: the ABNF rule, and our stricter policy where the spec leaves room.

Shared by the parser and the builder so both accept exactly the same values. Every check raises
``MalformedMessage`` naming the field; none echoes the offending value (it may be hostile).

Policies beyond the bare ABNF, each chosen so that one message has exactly one text encoding:

* ``address``: EIP-55 checksum REQUIRED (the spec says SHOULD "where applicable"); all-lowercase
  and all-uppercase spellings are refused, as the reference vectors do ("address not EIP-55").
  The prefix is ``0x`` in lower case (EIP-55's form).
* ``statement``: when present it is non-empty. The spec's ``statement = *( reserved / unreserved /
  " " )`` inside ``[ statement LF ]`` lets an empty statement add one more blank line, giving two
  signed texts for "no statement"; the reference grammars (siwe-py's ABNF, the siwe TS builder)
  use ``1*``, so we refuse the empty form in both the parser and the builder.
* ``chain_id``: decimal, no leading zero, 1 <= id <= 2**53 - 1. EIP-155 sets no upper bound;
  2**53 - 1 is the largest id a JavaScript wallet or a JSON consumer of our tokens holds exactly.
* ``nonce``: 8 to 128 ASCII letters and digits (the spec has no upper bound; ours caps the work).
* ``request_id``: ``*pchar`` as in the spec, so it may be empty (``Request ID: `` is a distinct
  text from no Request ID line, so this keeps one encoding per message).
* ``resources``: the ``Resources:`` line appears only with at least one entry.
"""

from __future__ import annotations

import re
from datetime import datetime

from app.siwe import rfc3986
from app.siwe.eip55 import checksum_body
from app.siwe.errors import MalformedMessage
from app.siwe.rfc3339 import instant, parse_date_time

MAX_CHAIN_ID = 2**53 - 1
MIN_NONCE_LENGTH = 8
MAX_NONCE_LENGTH = 128
MAX_PORT = 65535
VERSION = "1"

ADDRESS_PATTERN = r"0x[0-9a-fA-F]{40}"
# statement = 1*( reserved / unreserved / " " ), reserved and unreserved as in RFC 3986.
STATEMENT_PATTERN = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+"
NONCE_PATTERN = rf"[A-Za-z0-9]{{{MIN_NONCE_LENGTH},{MAX_NONCE_LENGTH}}}"
# 16 digits cover 2**53 - 1; the cap also keeps int() away from huge hostile numbers.
CHAIN_ID_PATTERN = r"[1-9][0-9]{0,15}"

_ADDRESS = re.compile(ADDRESS_PATTERN)
_STATEMENT = re.compile(STATEMENT_PATTERN)
_NONCE = re.compile(NONCE_PATTERN)
_CHAIN_ID = re.compile(CHAIN_ID_PATTERN)


def check_scheme(value: str) -> None:
    if rfc3986.SCHEME.fullmatch(value) is None:
        raise MalformedMessage("scheme: not an RFC 3986 scheme (a letter, then letters, digits, + - .)")


def check_domain(value: str) -> None:
    match = rfc3986.DOMAIN.fullmatch(value)
    if match is None:
        raise MalformedMessage("domain: not an RFC 3986 authority ([userinfo@]host[:port])")
    check_port(match.group("port"))


def check_port(port: str | None) -> None:
    if port is not None and int(port) > MAX_PORT:
        raise MalformedMessage(f"domain: port is above {MAX_PORT}")


def check_address(value: str) -> None:
    if _ADDRESS.fullmatch(value) is None:
        raise MalformedMessage("address: expected 0x followed by 40 hex digits")
    check_checksum(value)


def check_checksum(address: str) -> None:
    """``address`` already has the 0x + 40 hex digits shape."""
    body = address[2:]
    if checksum_body(body) != body:
        raise MalformedMessage("address: not in EIP-55 mixed-case checksum form")


def check_statement(value: str) -> None:
    if _STATEMENT.fullmatch(value) is None:
        raise MalformedMessage(
            "statement: must be one non-empty line of RFC 3986 reserved/unreserved characters and spaces"
        )


def check_uri(value: str, field: str = "uri") -> None:
    if rfc3986.URI.fullmatch(value) is None:
        raise MalformedMessage(f"{field}: not an RFC 3986 URI")


def check_version(value: str) -> None:
    if value != VERSION:
        raise MalformedMessage(f"version: must be {VERSION}")


def parse_chain_id(value: str) -> int:
    if _CHAIN_ID.fullmatch(value) is None:
        raise MalformedMessage(
            f"chain id: expected a decimal integer from 1 to {MAX_CHAIN_ID} without leading zeros"
        )
    return chain_id_in_range(value)


def chain_id_in_range(digits: str) -> int:
    """``digits`` already matches ``CHAIN_ID_PATTERN``."""
    chain_id = int(digits)
    if chain_id > MAX_CHAIN_ID:
        raise MalformedMessage(f"chain id: above {MAX_CHAIN_ID}")
    return chain_id


def check_chain_id(value: int) -> None:
    # bool is an int subclass; True is not a chain id.
    if type(value) is not int:
        raise MalformedMessage("chain id: must be an integer")
    if not 1 <= value <= MAX_CHAIN_ID:
        raise MalformedMessage(f"chain id: must be from 1 to {MAX_CHAIN_ID}")


def check_nonce(value: str) -> None:
    if _NONCE.fullmatch(value) is None:
        raise MalformedMessage(
            f"nonce: expected {MIN_NONCE_LENGTH} to {MAX_NONCE_LENGTH} ASCII letters and digits"
        )


def parse_timestamp(value: str, field: str) -> datetime:
    try:
        return parse_date_time(value)
    except ValueError as exc:
        raise MalformedMessage(f"{field}: {exc}") from None


def timestamp_instant(value: str, field: str) -> datetime:
    """``parse_timestamp`` for a value already known to have the RFC 3339 shape."""
    try:
        return instant(value)
    except ValueError as exc:
        raise MalformedMessage(f"{field}: {exc}") from None


def check_request_id(value: str) -> None:
    if rfc3986.PCHARS.fullmatch(value) is None:
        raise MalformedMessage("request id: only RFC 3986 pchar characters are allowed")


def check_text(value: object, field: str) -> str:
    """Builder-side type guard: the dataclass does not enforce its annotations."""
    if not isinstance(value, str):
        raise MalformedMessage(f"{field}: must be a string")
    return value
