"""RFC 3986 (URI generic syntax) rules that the EIP-4361 ABNF imports: URI, authority, scheme.

The patterns follow RFC 3986 Appendix A rule by rule. Two deliberate narrowings for the SIWE
``domain`` (an origin's authority, not an arbitrary one): the host must not be empty, and a port,
when present, is 1-5 digits no greater than 65535. ``uri`` and resources are full RFC 3986 URIs
with no narrowing; nothing here resolves, normalises or fetches anything.
"""

from __future__ import annotations

import re

_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT_ENCODED = r"%[0-9A-Fa-f]{2}"


def _star(chars: str) -> str:
    """``*( [chars] / pct-encoded )`` written as an unrolled loop.

    ``[c]*(?:%XX[c]*)*`` matches the same strings as ``(?:[c]|%XX)*`` but lets the regex engine
    run the character class in one tight loop instead of trying an alternation per character;
    every outer iteration must consume a "%", so it cannot backtrack catastrophically.
    """
    return rf"[{chars}]*(?:{_PCT_ENCODED}[{chars}]*)*"


def _plus(chars: str) -> str:
    """``1*( [chars] / pct-encoded )``."""
    return rf"(?:[{chars}]|{_PCT_ENCODED}){_star(chars)}"


_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
# The nine IPv6address alternatives of RFC 3986 section 3.2.2, in the RFC's order.
_IPV6 = (
    "(?:"
    + "|".join(
        (
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        )
    )
    + ")"
)
_IPVFUTURE = rf"v[0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
_IP_LITERAL = rf"\[(?:{_IPV6}|{_IPVFUTURE})\]"
_REG_NAME_CHARS = _UNRESERVED + _SUB_DELIMS
_USERINFO_CHARS = _UNRESERVED + _SUB_DELIMS + ":"
_PCHAR_CHARS = _UNRESERVED + _SUB_DELIMS + ":@"
# The lookahead tries userinfo only when the run of characters userinfo may hold ends in "@",
# sparing the engine a scan-and-backtrack over every authority without one (the usual case).
_OPTIONAL_USERINFO = rf"(?:(?=[{_USERINFO_CHARS}%]*@){_star(_USERINFO_CHARS)}@)?"
_HOST = rf"(?:{_IP_LITERAL}|{_IPV4}|{_star(_REG_NAME_CHARS)})"
_AUTHORITY = rf"{_OPTIONAL_USERINFO}{_HOST}(?::[0-9]*)?"

_SEGMENT = _star(_PCHAR_CHARS)
_SEGMENT_NZ = _plus(_PCHAR_CHARS)
_PATH_ABEMPTY = rf"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = rf"/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = rf"{_SEGMENT_NZ}(?:/{_SEGMENT})*"
_HIER_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS}|)"
_QUERY_OR_FRAGMENT = _star(_PCHAR_CHARS + "/?")
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"

SCHEME_PATTERN = _SCHEME
URI_PATTERN = rf"{_SCHEME}:{_HIER_PART}(?:\?{_QUERY_OR_FRAGMENT})?(?:#{_QUERY_OR_FRAGMENT})?"
PCHARS_PATTERN = _star(_PCHAR_CHARS)
# SIWE domain: authority with a non-empty host and, if present, a 1-5 digit port in the group
# named "port" (its range is checked by the caller).
_NONEMPTY_HOST = rf"(?:{_IP_LITERAL}|{_IPV4}|{_plus(_REG_NAME_CHARS)})"
DOMAIN_PATTERN = rf"{_OPTIONAL_USERINFO}{_NONEMPTY_HOST}(?::(?P<port>[0-9]{{1,5}}))?"

SCHEME = re.compile(SCHEME_PATTERN)
URI = re.compile(URI_PATTERN)
PCHARS = re.compile(PCHARS_PATTERN)
DOMAIN = re.compile(DOMAIN_PATTERN)
