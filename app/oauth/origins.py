"""RFC 6454 section 6.2 origins of a client's browser pages: serialised, derived, checked.

A browser names the page that made a request in its ``Origin`` header (RFC 6454 section 7, Fetch
Standard 3.1): ``scheme://host[:port]``, lower case, without the scheme's default port. A client's pages
are on the origins of its registered ``redirect_uris`` and ``siwe_domains``, or exactly on the
``allowed_origins`` it registered instead (docs/CLIENTS.md). Pure functions: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def serialize(uri: str) -> str | None:
    """The ASCII serialisation of ``uri``'s origin, or None for a URI without an http(s) origin."""
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host or not host.isascii():
        return None
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    return f"{scheme}://{shown}"


def dapp_scheme(domain: str) -> str:
    """The scheme of a SIWE dApp domain (host[:port]): http on a loopback host (RFC 8252 8.3), else https."""
    return "http" if domain.rsplit(":", 1)[0].strip("[]") in LOOPBACK_HOSTS else "https"


def siwe_domain_origin(domain: str) -> str | None:
    """The origin of the page that asks a wallet to sign for ``domain`` (EIP-4361: the domain is its
    authority)."""
    return serialize(f"{dapp_scheme(domain)}://{domain}")


def check_allowed_origin(value: str) -> str:
    """A registrable browser origin: serialised exactly, https, or http on a loopback host.

    Raises ValueError saying what is wrong. ``*`` and ``null`` are never origins a client can own.
    """
    origin = serialize(value)
    if origin is None or origin != value:
        raise ValueError(f"{value[:200]!r} is not a serialised origin (scheme://host[:port], no path)")
    parts = urlsplit(origin)
    if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"{value[:200]!r} must use https (http only for 127.0.0.1, [::1] or localhost)")
    return value


def client_origins(
    redirect_uris: Iterable[str], siwe_domains: Iterable[str], allowed: Iterable[str] | None
) -> frozenset[str]:
    """Where a client's browser pages may call from: ``allowed`` when registered (it replaces what is
    derived, so ``[]`` means from no browser at all), else the origins of the redirect URIs and SIWE
    domains."""
    if allowed is not None:
        return frozenset(allowed)
    derived = [serialize(uri) for uri in redirect_uris] + [siwe_domain_origin(d) for d in siwe_domains]
    return frozenset(o for o in derived if o is not None)
