"""Normalising the identities that limits and counters are keyed by: client IPs and wallet addresses.

An IPv6 client controls at least a /64 (RFC 4291 section 2.5.4 interface identifiers; RFC 8981
temporary addresses rotate inside it), so IPv6 is keyed by its /64: one budget per subscriber, not
2**64. IPv4-mapped IPv6 addresses count as their IPv4 address. Values that are not what they claim to
be are hashed, so a key never carries unbounded or odd text from a request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

UNKNOWN_IP = "unknown"
IPV6_PREFIX = 64

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _hashed(value: str) -> str:
    return "h:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def ip_key(ip: str | None) -> str:
    """The budget an IP belongs to: the IPv4 address, the IPv6 /64, or one shared 'unknown' bucket."""
    if ip is None or not ip:
        # No address (e.g. a Unix socket without a trusted proxy): one shared bucket, never none.
        return UNKNOWN_IP
    if "/" in ip:
        # An operator naming a key as it was reported (an IPv6 /64, an IPv4 /32).
        return _network_key(ip)
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return _hashed(ip)
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed), IPV6_PREFIX), strict=False))
    return str(parsed)


def _network_key(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return _hashed(value)
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= IPV6_PREFIX:
        return ip_key(str(network.network_address))
    if isinstance(network, ipaddress.IPv4Network) and network.prefixlen == 32:
        return str(network.network_address)
    return _hashed(value)


def address_key(address: str) -> str:
    """A wallet address, case-folded (EIP-55 checksums are a display form of the same account)."""
    value = address.strip()
    if _ADDRESS.fullmatch(value):
        return value.lower()
    return _hashed(value)


def client_key(client_id: str) -> str:
    if len(client_id) <= 64 and client_id.isprintable() and ":" not in client_id and " " not in client_id:
        return client_id
    return _hashed(client_id)
