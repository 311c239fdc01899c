"""The client IP: the socket peer, or RFC 7239 ``Forwarded`` / ``X-Forwarded-For`` set by trusted proxies.

Forwarding headers are read only when the socket peer is a trusted proxy, and then from the right:
each proxy appends the address it received the request from, so the rightmost entries are written by
our own proxies and everything left of the first untrusted hop was written by the client and proves
nothing. The answer is that first untrusted hop. A client that sends its own ``X-Forwarded-For``
therefore still lands on its real address (its text sits left of what our proxy appended).

Garbage fails closed: a header we cannot parse, in the part we must read, yields the peer (a trusted
proxy; its budget is shared, never fresh). A hop our proxy reports as ``unknown`` or obfuscated
(RFC 7239 section 6.3) yields the trusted proxy that reported it, for the same reason.

With ``prefer="auto"`` a request carrying both headers is answered from them only when they agree:
a proxy that writes one header cannot stop a client from sending the other, and the client's copy
must not choose the answer. Set ``prefer`` to the header your proxies write to read only that one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Prefer = Literal["auto", "forwarded", "x-forwarded-for"]


class _Unidentified:
    """A hop the proxy chose not to name: ``unknown`` or an obfuscated identifier."""


UNIDENTIFIED = _Unidentified()
Hop = IPAddress | _Unidentified

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x09\x20-\x7e\x80-\xff])*)"')
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")
_IPV4_TOKEN = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


class _Malformed(ValueError):
    pass


def client_ip(
    peer: str | None,
    headers: Sequence[tuple[str, str]],
    trusted_proxies: Sequence[IPNetwork],
    *,
    prefer: Prefer = "auto",
) -> str | None:
    """The client's address as text (IPv4-mapped IPv6 shown as IPv4), or ``peer`` unchanged when it
    is not an IP address (None for a Unix socket)."""
    if peer is None:
        return None
    start = _ip(peer)
    if start is None:
        return peer
    if not _trusted(start, trusted_proxies):
        return str(start)
    forwarded = _joined(headers, "forwarded") if prefer != "x-forwarded-for" else None
    xff = _joined(headers, "x-forwarded-for") if prefer != "forwarded" else None
    try:
        answers = []
        if forwarded is not None:
            answers.append(_walk(start, _forwarded_hops(forwarded), trusted_proxies))
        if xff is not None:
            answers.append(_walk(start, _xff_hops(xff), trusted_proxies))
    except _Malformed:
        return str(start)
    if not answers or any(a != answers[0] for a in answers):
        return str(start)
    return str(answers[0])


def _trusted(ip: IPAddress, trusted_proxies: Sequence[IPNetwork]) -> bool:
    return any(ip in network for network in trusted_proxies)


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _joined(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    # RFC 9110 section 5.3: repeated field lines combine, in order, into one comma-separated list.
    values = [value for key, value in headers if key.lower() == name]
    return ",".join(values) if values else None


def _walk(
    peer: IPAddress, hops_right_to_left: Iterator[Hop], trusted_proxies: Sequence[IPNetwork]
) -> IPAddress:
    """From the peer leftwards to the first address that is not a trusted proxy. Hops are parsed as the
    walk reaches them: what lies left of that address was written by the client and is never read."""
    current = peer  # the caller has checked that the peer is trusted
    for hop in hops_right_to_left:
        if isinstance(hop, _Unidentified):
            return current  # the trusted proxy that forwarded an unnamed client
        current = hop
        if not _trusted(current, trusted_proxies):
            return current  # stop before the next (client-written) entry is even parsed
    return current


def _xff_hops(value: str) -> Iterator[Hop]:
    """X-Forwarded-For, right to left: ``client, proxy1, proxy2``; entries may carry a port."""
    for raw in reversed(value.split(",")):
        entry = raw.strip(" \t")
        yield UNIDENTIFIED if entry.lower() == "unknown" else _node_address(entry, forwarded=False)


def _forwarded_hops(value: str) -> Iterator[Hop]:
    """RFC 7239 section 4, right to left: ``for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"``.

    The whole field is tokenised first (a quoted-string may hide a comma), so a syntax error anywhere
    is malformed; the ``for`` values are then read from the right as the walk needs them.
    """
    for element in reversed(_forwarded_elements(value)):
        node = element.get("for")
        if node is None:
            raise _Malformed("a forwarded-element without for=")
        text, quoted = node
        name, _, port = text.partition(":") if not text.startswith("[") else (text, "", "")
        if name.lower() == "unknown" or _OBFUSCATED.fullmatch(name):
            if port and not (quoted and _valid_port(port)):
                raise _Malformed("bad port")
            yield UNIDENTIFIED
        elif not quoted and not _IPV4_TOKEN.fullmatch(text):
            raise _Malformed("an unquoted node must be an IPv4 address")  # ':' and '[' are not tchars
        else:
            yield _node_address(text, forwarded=True)


def _skip_ows(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return pos


def _forwarded_elements(value: str) -> list[dict[str, tuple[str, bool]]]:
    """Tokenise ``1#forwarded-element``: pairs of token=(token / quoted-string) split by ';' and ','.

    Values are returned unescaped, with whether they were quoted. Whitespace is tolerated around the
    separators (common in practice), never around '='.
    """
    elements: list[dict[str, tuple[str, bool]]] = []
    element: dict[str, tuple[str, bool]] = {}
    pos = 0
    while True:
        pos = _skip_ows(value, pos)
        name = _TOKEN.match(value, pos)
        if name is None or value[name.end() : name.end() + 1] != "=":
            raise _Malformed("expected a token=value pair")
        pos = name.end() + 1
        token = _TOKEN.match(value, pos)
        quoted = None if token else _QUOTED.match(value, pos)
        if token is not None:
            pair, pos = (token.group(), False), token.end()
        elif quoted is not None:
            pair, pos = (re.sub(r"\\(.)", r"\1", quoted.group(1)), True), quoted.end()
        else:
            raise _Malformed("a value is neither a token nor a quoted-string")
        key = name.group().lower()
        if key in element:
            raise _Malformed(f"parameter {key!r} repeated in one element")  # RFC 7239 section 4
        element[key] = pair
        pos = _skip_ows(value, pos)
        if pos == len(value):
            elements.append(element)
            return elements
        if value[pos] == ",":
            elements.append(element)
            element = {}
        elif value[pos] != ";":
            raise _Malformed("expected ';' or ','")
        pos += 1


def _node_address(node: str, *, forwarded: bool) -> IPAddress:
    """``IPv4 [":" port]`` or ``"[" IPv6 "]" [":" port]`` (RFC 7239 section 6); X-Forwarded-For also
    carries bare IPv6 addresses, which ``Forwarded`` must bracket."""
    if node.startswith("["):
        end = node.find("]")
        host, rest = (node[1:end], node[end + 1 :]) if end > 0 else ("", "")
        if ":" not in host or "%" in host or (rest and not (rest[0] == ":" and _valid_port(rest[1:]))):
            raise _Malformed("not [IPv6] or [IPv6]:port")
        ip = _ip(host)
        if ip is None:
            raise _Malformed("not an IPv6 address in brackets")
        return ip
    host, sep, port = node.partition(":")
    if sep and _IPV4_TOKEN.fullmatch(host):
        if not _valid_port(port):
            raise _Malformed("bad port")
        node = host
    ip = _ip(node) if "%" not in node else None
    if ip is None or (forwarded and isinstance(ip, ipaddress.IPv6Address)):
        raise _Malformed("not an IP address")
    return ip


def _valid_port(text: str) -> bool:
    """RFC 7239 section 6: ``node-port = port / obfport``; a number must be a TCP port."""
    return _PORT.fullmatch(text) is not None and (text[0] == "_" or int(text) <= 65535)
