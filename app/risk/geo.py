"""IP address to country (ISO 3166-1 alpha-2) for the risk engine's residence-mismatch signal.

The lookup sits behind ``IpCountry`` so a deployment can plug in a real geolocation database. The
development default, ``StaticCidrTable.development()``, knows no real country: it maps the private,
loopback and link-local ranges to "no country" and gives the documentation ranges (RFC 5737 for IPv4,
RFC 3849 for IPv6) fictional countries, so tests and local runs can exercise a mismatch.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

_ALPHA2 = re.compile(r"[A-Z]{2}")

# None = "this range has no country" (it answers like an unknown address, and wins over a shorter prefix).
DEVELOPMENT_TABLE: Mapping[str, str | None] = MappingProxyType(
    {
        "127.0.0.0/8": None,  # loopback (RFC 1122)
        "10.0.0.0/8": None,  # private (RFC 1918)
        "172.16.0.0/12": None,
        "192.168.0.0/16": None,
        "100.64.0.0/10": None,  # shared address space, carrier-grade NAT (RFC 6598)
        "169.254.0.0/16": None,  # link-local (RFC 3927)
        "::1/128": None,
        "fc00::/7": None,  # unique local (RFC 4193)
        "fe80::/10": None,
        # Documentation ranges with made-up countries, for tests and local runs only.
        "192.0.2.0/24": "FR",  # TEST-NET-1
        "198.51.100.0/24": "US",  # TEST-NET-2
        "203.0.113.0/24": "DE",  # TEST-NET-3
        "2001:db8::/32": "JP",  # RFC 3849
    }
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IpCountry(Protocol):
    def country(self, ip: str) -> str | None:
        """The ISO 3166-1 alpha-2 country of ``ip`` (upper case), or None when unknown or not an address."""
        ...


class StaticCidrTable:
    """Longest-prefix match over a small ``{cidr: alpha-2 or None}`` table held in memory."""

    def __init__(self, table: Mapping[str, str | None]) -> None:
        # One dict per (version, prefix length), longest prefixes first: a lookup is one mask and one dict
        # probe per distinct prefix length in the table.
        levels: dict[tuple[int, int], dict[int, str | None]] = {}
        for cidr, country in table.items():
            try:
                network: _Network = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"geo table: {cidr!r} is not a CIDR block ({exc})") from None
            if country is not None and not _ALPHA2.fullmatch(country):
                raise ValueError(f"geo table: {cidr!r} maps to {country!r}, not an upper-case alpha-2 code")
            level = levels.setdefault((network.version, network.prefixlen), {})
            level[int(network.network_address)] = country
        self._levels = tuple(
            (version, _mask(version, prefix), entries)
            for (version, prefix), entries in sorted(levels.items(), key=lambda kv: -kv[0][1])
        )

    @classmethod
    def development(cls) -> StaticCidrTable:
        """The documented development default (``DEVELOPMENT_TABLE``)."""
        return cls(DEVELOPMENT_TABLE)

    def country(self, ip: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        value, version = int(address), address.version
        for level_version, mask, entries in self._levels:
            if level_version == version and (value & mask) in entries:
                return entries[value & mask]
        return None


def _mask(version: int, prefix: int) -> int:
    bits = 32 if version == 4 else 128
    return ((1 << prefix) - 1) << (bits - prefix)
