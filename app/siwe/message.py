"""EIP-4361 message: strict parser and canonical builder (``SiweMessage.to_text``).

The grammar is the ABNF of EIP-4361 (with the ``scheme://`` erratum) plus the field policies
documented in ``app.siwe.fields``. It is canonical: every text ``parse`` accepts equals
``parse(text).to_text()``, so one message has one signed encoding. Limits are checked before any
parsing: ``max_bytes`` on the UTF-8 length and ``max_resources`` on the number of resource lines.
Lines end with LF only; a CR anywhere is refused, and so is a newline after the last field.

Two parsers, one language. ``parse`` matches the whole text with one compiled regular expression
built from the field patterns, then runs the checks a regex cannot do (EIP-55 checksum, ranges,
calendar dates): this is the sign-in hot path. When the expression does not match, the slower
``parse_by_lines`` walks the text line by line to say exactly which rule failed. The tests hold
the two to the same answers.

Timestamps are kept as the exact signed strings; ``*_dt()`` return aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from app.siwe import rfc3986
from app.siwe.errors import MalformedMessage
from app.siwe.fields import (
    ADDRESS_PATTERN,
    CHAIN_ID_PATTERN,
    NONCE_PATTERN,
    STATEMENT_PATTERN,
    VERSION,
    chain_id_in_range,
    check_address,
    check_chain_id,
    check_checksum,
    check_domain,
    check_nonce,
    check_port,
    check_request_id,
    check_scheme,
    check_statement,
    check_text,
    check_uri,
    check_version,
    parse_chain_id,
    parse_timestamp,
    timestamp_instant,
)
from app.siwe.rfc3339 import DATE_TIME_PATTERN

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
DEFAULT_MAX_BYTES = 8192
DEFAULT_MAX_RESOURCES = 64

_URI = "URI: "
_VERSION = "Version: "
_CHAIN_ID = "Chain ID: "
_NONCE = "Nonce: "
_ISSUED_AT = "Issued At: "
_EXPIRATION_TIME = "Expiration Time: "
_NOT_BEFORE = "Not Before: "
_REQUEST_ID = "Request ID: "
_RESOURCES = "Resources:"
_RESOURCE_ITEM = "- "
_RESOURCE_LINE_START = "\n- "
# header, address, blank, blank, URI, Version, Chain ID, Nonce, Issued At
_MIN_LINES = 9

# The whole message in one expression, line for line the EIP-4361 ABNF. Its only capturing
# groups are the fields (and the domain's port). The field prefixes hold no regex metacharacters.
_MESSAGE = re.compile(
    rf"(?:(?P<scheme>{rfc3986.SCHEME_PATTERN})://)?(?P<domain>{rfc3986.DOMAIN_PATTERN})"
    rf"{re.escape(HEADER_SUFFIX)}\n"
    rf"(?P<address>{ADDRESS_PATTERN})\n"
    rf"\n"
    rf"(?:(?P<statement>{STATEMENT_PATTERN})\n)?"
    rf"\n"
    rf"{_URI}(?P<uri>{rfc3986.URI_PATTERN})\n"
    rf"{_VERSION}{VERSION}\n"
    rf"{_CHAIN_ID}(?P<chain_id>{CHAIN_ID_PATTERN})\n"
    rf"{_NONCE}(?P<nonce>{NONCE_PATTERN})\n"
    rf"{_ISSUED_AT}(?P<issued_at>{DATE_TIME_PATTERN})"
    rf"(?:\n{_EXPIRATION_TIME}(?P<expiration_time>{DATE_TIME_PATTERN}))?"
    rf"(?:\n{_NOT_BEFORE}(?P<not_before>{DATE_TIME_PATTERN}))?"
    rf"(?:\n{_REQUEST_ID}(?P<request_id>{rfc3986.PCHARS_PATTERN}))?"
    rf"(?:\n{_RESOURCES}(?P<resources>(?:\n{_RESOURCE_ITEM}{rfc3986.URI_PATTERN})+))?"
)
_GROUPS = (
    "scheme",
    "domain",
    "port",
    "address",
    "statement",
    "uri",
    "chain_id",
    "nonce",
    "issued_at",
    "expiration_time",
    "not_before",
    "request_id",
    "resources",
)


class Timeline(NamedTuple):
    """A message's timestamps as aware UTC instants (what the time checks compare)."""

    issued_at: datetime
    expiration_time: datetime | None
    not_before: datetime | None


@dataclass(frozen=True, slots=True)
class SiweMessage:
    """The fields of one EIP-4361 message, as signed (timestamps are the signed strings)."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    scheme: str | None = None
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()

    def issued_at_dt(self) -> datetime:
        return parse_timestamp(self.issued_at, "issued at")

    def expiration_time_dt(self) -> datetime | None:
        if self.expiration_time is None:
            return None
        return parse_timestamp(self.expiration_time, "expiration time")

    def not_before_dt(self) -> datetime | None:
        if self.not_before is None:
            return None
        return parse_timestamp(self.not_before, "not before")

    def timeline(self) -> Timeline:
        return Timeline(self.issued_at_dt(), self.expiration_time_dt(), self.not_before_dt())

    def to_text(self) -> str:
        """The exact EIP-4361 text to sign; ``MalformedMessage`` if any field is invalid."""
        self._validate()
        origin = self.domain if self.scheme is None else f"{self.scheme}://{self.domain}"
        lines = [origin + HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            _URI + self.uri,
            _VERSION + self.version,
            f"{_CHAIN_ID}{self.chain_id}",
            _NONCE + self.nonce,
            _ISSUED_AT + self.issued_at,
        ]
        if self.expiration_time is not None:
            lines.append(_EXPIRATION_TIME + self.expiration_time)
        if self.not_before is not None:
            lines.append(_NOT_BEFORE + self.not_before)
        if self.request_id is not None:
            lines.append(_REQUEST_ID + self.request_id)
        if self.resources:
            lines.append(_RESOURCES)
            lines += [_RESOURCE_ITEM + resource for resource in self.resources]
        return "\n".join(lines)

    def _validate(self) -> None:
        if self.scheme is not None:
            check_scheme(check_text(self.scheme, "scheme"))
        check_domain(check_text(self.domain, "domain"))
        check_address(check_text(self.address, "address"))
        if self.statement is not None:
            check_statement(check_text(self.statement, "statement"))
        check_uri(check_text(self.uri, "uri"))
        check_version(check_text(self.version, "version"))
        check_chain_id(self.chain_id)
        check_nonce(check_text(self.nonce, "nonce"))
        parse_timestamp(check_text(self.issued_at, "issued at"), "issued at")
        if self.expiration_time is not None:
            parse_timestamp(check_text(self.expiration_time, "expiration time"), "expiration time")
        if self.not_before is not None:
            parse_timestamp(check_text(self.not_before, "not before"), "not before")
        if self.request_id is not None:
            check_request_id(check_text(self.request_id, "request id"))
        _check_resources(self.resources)


def _check_resources(resources: Iterable[object]) -> None:
    if isinstance(resources, str):
        raise MalformedMessage("resources: must be a sequence of URIs, not one string")
    for index, resource in enumerate(resources, start=1):
        check_uri(check_text(resource, f"resource {index}"), f"resource {index}")


def _check_limits(text: str, max_bytes: int, max_resources: int) -> None:
    # isascii() is a fast scan; only non-ASCII text (refused later anyway) pays for an encode.
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise MalformedMessage(f"message: {size} bytes, above the limit of {max_bytes}")
    # Every resource line starts with LF "- "; no other line of a valid message can.
    if text.count(_RESOURCE_LINE_START) > max_resources:
        raise MalformedMessage(f"resources: more than the limit of {max_resources}")
    if "\r" in text:
        raise MalformedMessage("message: contains CR; EIP-4361 lines end with LF only")


def _take(lines: list[str], index: int, prefix: str, field: str) -> str:
    if index >= len(lines):
        raise MalformedMessage(f"line {index + 1}: missing, expected the {field} line")
    line = lines[index]
    if not line.startswith(prefix):
        raise MalformedMessage(
            f"line {index + 1}: expected {prefix.strip()!r} ({field}); fields must be in EIP-4361 order"
        )
    return line[len(prefix) :]


def parse(
    text: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_resources: int = DEFAULT_MAX_RESOURCES
) -> SiweMessage:
    """Parse an EIP-4361 message strictly; ``MalformedMessage`` says which rule failed."""
    return parse_timed(text, max_bytes=max_bytes, max_resources=max_resources)[0]


def parse_timed(
    text: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_resources: int = DEFAULT_MAX_RESOURCES
) -> tuple[SiweMessage, Timeline]:
    """``parse``, also returning the instants it computed to validate the timestamps.

    ``verify`` uses them so that the sign-in path converts each timestamp once.
    """
    if not isinstance(text, str):
        raise MalformedMessage("message: must be text")
    _check_limits(text, max_bytes, max_resources)
    match = _MESSAGE.fullmatch(text)
    if match is None:
        _parse_lines(text)  # raises, naming the first rule the text breaks
        raise MalformedMessage("message: does not follow the EIP-4361 grammar")
    (
        scheme,
        domain,
        port,
        address,
        statement,
        uri,
        chain_id,
        nonce,
        issued_at,
        expiration_time,
        not_before,
        request_id,
        resources,
    ) = match.group(*_GROUPS)
    # What the expression cannot check, in the order parse_by_lines checks it, so that both name
    # the same first failure.
    check_port(port)
    check_checksum(address)
    chain_id_value = chain_id_in_range(chain_id)
    timeline = Timeline(
        timestamp_instant(issued_at, "issued at"),
        None if expiration_time is None else timestamp_instant(expiration_time, "expiration time"),
        None if not_before is None else timestamp_instant(not_before, "not before"),
    )
    message = SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        version=VERSION,
        chain_id=chain_id_value,
        nonce=nonce,
        issued_at=issued_at,
        scheme=scheme,
        statement=statement,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        # The group starts with the first item's LF "- ", hence the empty first element.
        resources=tuple(resources.split(_RESOURCE_LINE_START)[1:]) if resources else (),
    )
    return message, timeline


def parse_by_lines(
    text: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_resources: int = DEFAULT_MAX_RESOURCES
) -> SiweMessage:
    """Same language and answers as ``parse``, walked line by line: slower, says exactly why."""
    if not isinstance(text, str):
        raise MalformedMessage("message: must be text")
    _check_limits(text, max_bytes, max_resources)
    return _parse_lines(text)


def _parse_lines(text: str) -> SiweMessage:
    lines = text.split("\n")
    count = len(lines)

    header = lines[0]
    if not header.endswith(HEADER_SUFFIX):
        raise MalformedMessage(f"line 1: must end with {HEADER_SUFFIX.strip()!r}")
    origin = header[: -len(HEADER_SUFFIX)]
    scheme: str | None
    scheme, separator, domain = origin.partition("://")
    if separator:
        check_scheme(scheme)
    else:
        scheme, domain = None, origin
    check_domain(domain)
    if count < _MIN_LINES:
        raise MalformedMessage(f"message: {count} lines, a SIWE message has at least {_MIN_LINES}")

    address = lines[1]
    check_address(address)
    if lines[2]:
        raise MalformedMessage("line 3: must be empty (after the address)")
    statement: str | None = None
    index = 4
    if lines[3]:
        statement = lines[3]
        check_statement(statement)
        if lines[4]:
            raise MalformedMessage("line 5: must be empty (after the statement)")
        index = 5

    uri = _take(lines, index, _URI, "URI")
    check_uri(uri)
    version = _take(lines, index + 1, _VERSION, "Version")
    check_version(version)
    chain_id = parse_chain_id(_take(lines, index + 2, _CHAIN_ID, "Chain ID"))
    nonce = _take(lines, index + 3, _NONCE, "Nonce")
    check_nonce(nonce)
    issued_at = _take(lines, index + 4, _ISSUED_AT, "Issued At")
    parse_timestamp(issued_at, "issued at")
    index += 5

    expiration_time = not_before = request_id = None
    if index < count and lines[index].startswith(_EXPIRATION_TIME):
        expiration_time = lines[index][len(_EXPIRATION_TIME) :]
        parse_timestamp(expiration_time, "expiration time")
        index += 1
    if index < count and lines[index].startswith(_NOT_BEFORE):
        not_before = lines[index][len(_NOT_BEFORE) :]
        parse_timestamp(not_before, "not before")
        index += 1
    if index < count and lines[index].startswith(_REQUEST_ID):
        request_id = lines[index][len(_REQUEST_ID) :]
        check_request_id(request_id)
        index += 1
    resources: tuple[str, ...] = ()
    if index < count and lines[index] == _RESOURCES:
        start = index = index + 1
        while index < count and lines[index].startswith(_RESOURCE_ITEM):
            check_uri(lines[index][2:], f"resource {index - start + 1}")
            index += 1
        if index == start:
            raise MalformedMessage("resources: 'Resources:' must be followed by at least one '- ' line")
        resources = tuple(line[2:] for line in lines[start:index])

    if index < count:
        if index == count - 1 and not lines[index]:
            raise MalformedMessage("message: ends with a newline; nothing may follow the last field")
        raise MalformedMessage(
            f"line {index + 1}: unexpected (unknown field, field out of order, or extra text)"
        )
    return SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        version=version,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        scheme=scheme,
        statement=statement,
        expiration_time=expiration_time,
        not_before=not_before,
        request_id=request_id,
        resources=resources,
    )
