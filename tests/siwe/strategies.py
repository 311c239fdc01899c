"""Hypothesis strategies for valid EIP-4361 messages (within what every implementation accepts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from eth_utils.address import to_checksum_address
from hypothesis import strategies as st

from app.siwe import SiweMessage

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_SUB_DELIMS = "!$&'()*+,;="
_STATEMENT_CHARS = _UNRESERVED + _SUB_DELIMS + ":/?#[]@ "
_PCHAR_CHARS = _UNRESERVED + _SUB_DELIMS + ":@"

_pct = st.integers(0, 255).map(lambda b: f"%{b:02X}")


def _pchars(extra: str = "", min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(_PCHAR_CHARS + extra), _pct)
    return st.lists(piece, min_size=min_size, max_size=max_size).map("".join)


_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
# The last label starts with a letter: RFC 3986 allows "a.0", but WHATWG URL parsing (pydantic's,
# which siwe-py uses for URIs) reads a numeric last label as a broken IPv4 address.
_top_label = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
reg_names = st.tuples(st.lists(_label, max_size=3), _top_label).map(
    lambda parts: ".".join([*parts[0], parts[1]])
)
hosts = st.one_of(
    reg_names,
    st.just("localhost"),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
ports = st.one_of(st.none(), st.integers(1, 65535))
userinfos = st.from_regex(r"[a-z0-9]{1,8}(?::[a-z0-9]{1,8})?", fullmatch=True)


@st.composite
def domains(draw: st.DrawFn, userinfo: bool = True) -> str:
    domain = draw(hosts)
    port = draw(ports)
    if port is not None:
        domain = f"{domain}:{port}"
    if userinfo and draw(st.integers(0, 9)) == 0:
        domain = f"{draw(userinfos)}@{domain}"
    return domain


@st.composite
def uris(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["web", "web", "web", "urn", "did", "ipfs"]))
    if kind == "urn":
        return "urn:" + draw(st.from_regex(r"[a-z]{1,8}:[a-z0-9-]{1,20}", fullmatch=True))
    if kind == "did":
        return "did:pkh:eip155:1:" + to_checksum_address(draw(st.binary(min_size=20, max_size=20)))
    if kind == "ipfs":
        return "ipfs://" + draw(st.from_regex(r"[a-z2-7]{20,46}", fullmatch=True)) + "/"
    uri = draw(st.sampled_from(["https", "http"])) + "://" + draw(domains(userinfo=False))
    for segment in draw(st.lists(_pchars(), max_size=3)):
        uri += "/" + segment
    if draw(st.booleans()):
        uri += "?" + draw(_pchars("/?"))
    if draw(st.booleans()):
        uri += "#" + draw(_pchars("/?"))
    return uri


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + draw(st.from_regex(rf"[0-9]{{{digits}}}", fullmatch=True))
    minutes = draw(st.one_of(st.none(), st.integers(-23 * 60 - 59, 23 * 60 + 59)))
    if minutes is None:
        return text + "Z"
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{rest:02d}"


def optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), strategy)


@st.composite
def messages(draw: st.DrawFn) -> SiweMessage:
    return SiweMessage(
        scheme=draw(
            optional(
                st.one_of(
                    st.sampled_from(["https", "http"]),
                    st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True),
                )
            )
        ),
        domain=draw(domains()),
        address=to_checksum_address(draw(st.binary(min_size=20, max_size=20))),
        statement=draw(optional(st.text(st.sampled_from(_STATEMENT_CHARS), min_size=1, max_size=80))),
        uri=draw(uris()),
        version="1",
        chain_id=draw(st.integers(1, 2**53 - 1)),
        nonce=draw(st.from_regex(r"[A-Za-z0-9]{8,32}", fullmatch=True)),
        issued_at=draw(timestamps()),
        expiration_time=draw(optional(timestamps())),
        not_before=draw(optional(timestamps())),
        request_id=draw(optional(_pchars(min_size=1))),
        resources=tuple(draw(st.lists(uris(), max_size=3))),
    )


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


ONE_MICROSECOND = timedelta(microseconds=1)
