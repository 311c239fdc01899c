"""app.http.client_ip: RFC 7239 Forwarded and X-Forwarded-For, read right to left from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from app.http.client_ip import client_ip

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00:aaaa::/32")]
LB, EDGE = "10.0.0.2", "10.1.0.7"  # our load balancer (the socket peer) and the proxy in front of it
CLIENT = "198.51.100.23"


def xff(value: str) -> list[tuple[str, str]]:
    return [("X-Forwarded-For", value)]


def fwd(value: str) -> list[tuple[str, str]]:
    return [("Forwarded", value)]


def test_untrusted_peer_spoofing_x_forwarded_for_is_ignored() -> None:
    for headers in (xff("1.2.3.4"), fwd("for=1.2.3.4"), xff("10.0.0.9"), xff("garbage")):
        assert client_ip(CLIENT, headers, TRUSTED) == CLIENT


def test_no_trusted_proxies_configured_means_the_socket_peer() -> None:
    assert client_ip(LB, xff(CLIENT), []) == LB


def test_one_trusted_proxy() -> None:
    assert client_ip(LB, xff(CLIENT), TRUSTED) == CLIENT
    assert client_ip(LB, fwd(f"for={CLIENT}"), TRUSTED) == CLIENT


def test_chain_through_two_trusted_proxies() -> None:
    assert client_ip(LB, xff(f"{CLIENT}, {EDGE}"), TRUSTED) == CLIENT
    assert client_ip(LB, fwd(f"for={CLIENT};proto=https, for={EDGE}"), TRUSTED) == CLIENT
    # as two field lines: they join in order
    assert client_ip(LB, [("x-forwarded-for", CLIENT), ("X-FORWARDED-FOR", EDGE)], TRUSTED) == CLIENT


def test_client_sent_x_forwarded_for_does_not_get_a_fresh_budget() -> None:
    """The client's own header text sits left of what our proxies appended: it is never reached."""
    for forged in ("1.2.3.4", "10.0.0.5", "1.2.3.4, 5.6.7.8", "garbage", "unknown", "[::1]"):
        assert client_ip(LB, xff(f"{forged}, {CLIENT}, {EDGE}"), TRUSTED) == CLIENT
        assert client_ip(LB, xff(f"{forged}, {CLIENT}"), TRUSTED) == CLIENT
    assert client_ip(LB, fwd(f'for=1.2.3.4, for=_x, for="{CLIENT}:1", for={EDGE}'), TRUSTED) == CLIENT


def test_every_hop_trusted_yields_the_leftmost() -> None:
    assert client_ip(LB, xff(f"10.9.9.9, {EDGE}"), TRUSTED) == "10.9.9.9"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ('for="192.0.2.43:47011"', "192.0.2.43"),
        ('for="192.0.2.43:_port7"', "192.0.2.43"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ('For="192.0.2.60" ; Proto=https', "192.0.2.60"),  # names are case-insensitive
        ('by="[fd00:aaaa::1]";for=192.0.2.60;host="example.com,x"', "192.0.2.60"),  # comma in quotes
        ('for="192.0.2.\\61"', "192.0.2.61"),  # quoted-pair
        ('for="[::ffff:192.0.2.9]"', "192.0.2.9"),
    ],
)
def test_forwarded_forms(header: str, expected: str) -> None:
    assert client_ip(LB, fwd(header), TRUSTED) == expected


@pytest.mark.parametrize("node", ["unknown", "_hidden", "_SEVKISEK", '"_gazonk:_p"', '"unknown:8080"'])
def test_unnamed_client_counts_as_the_proxy_that_forwarded_it(node: str) -> None:
    assert client_ip(LB, fwd(f"for={node}"), TRUSTED) == LB
    assert client_ip(LB, fwd(f"for={node}, for={EDGE}"), TRUSTED) == EDGE
    assert client_ip(LB, xff(f"unknown, {EDGE}"), TRUSTED) == EDGE


@pytest.mark.parametrize(
    "value",
    [
        "for=2001:db8::1",  # IPv6 must be quoted and bracketed
        'for="2001:db8::1"',
        "for=192.0.2.1:80",  # a port needs quotes
        'for="[2001:db8::1"',
        'for="[192.0.2.1]"',
        'for="300.1.1.1"',
        "for=",
        "for",
        "=192.0.2.1",
        'for="192.0.2.1',
        "for=192.0.2.1;for=192.0.2.2",  # a parameter twice in one element
        "proto=https",  # no for=
        "for=192.0.2.1 for=192.0.2.2",
        "for=192.0.2.1,,",
        "",
        'for="[fe80::1%25eth0]"',
    ],
)
def test_malformed_forwarded_yields_the_peer(value: str) -> None:
    assert client_ip(LB, fwd(value), TRUSTED) == LB


@pytest.mark.parametrize(
    "value", ["", " ", "garbage", f"{CLIENT},", "300.1.2.3", "1.2.3.4:99999", "[2001:db8::1", "1.2.3.4/24"]
)
def test_malformed_x_forwarded_for_yields_the_peer(value: str) -> None:
    assert client_ip(LB, xff(value), TRUSTED) == LB


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("192.0.2.7:5000", "192.0.2.7"),
        (" 192.0.2.7 ", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
    ],
)
def test_x_forwarded_for_forms(value: str, expected: str) -> None:
    assert client_ip(LB, xff(value), TRUSTED) == expected


def test_both_headers_must_agree_unless_one_is_chosen() -> None:
    # a proxy that writes X-Forwarded-For cannot stop the client sending Forwarded: disagreement -> peer
    both = [("Forwarded", "for=1.2.3.4"), ("X-Forwarded-For", CLIENT)]
    assert client_ip(LB, both, TRUSTED) == LB
    assert client_ip(LB, both, TRUSTED, prefer="x-forwarded-for") == CLIENT
    assert client_ip(LB, both, TRUSTED, prefer="forwarded") == "1.2.3.4"
    # a proxy that writes both: they agree
    agreeing = [("Forwarded", f'for="{CLIENT}:5"'), ("X-Forwarded-For", CLIENT)]
    assert client_ip(LB, agreeing, TRUSTED) == CLIENT
    assert client_ip(LB, xff(CLIENT), TRUSTED, prefer="forwarded") == LB  # the header it reads is absent


def test_ipv6_peers_and_mapped_addresses() -> None:
    assert client_ip("fd00:aaaa::1", xff(CLIENT), TRUSTED) == CLIENT
    assert client_ip("::ffff:10.0.0.2", xff("2001:db8::5"), TRUSTED) == "2001:db8::5"
    assert client_ip("2001:db8::99", xff(CLIENT), TRUSTED) == "2001:db8::99"
    assert client_ip("::ffff:198.51.100.1", [], TRUSTED) == "198.51.100.1"


def test_no_peer_or_a_peer_that_is_not_an_ip() -> None:
    assert client_ip(None, xff(CLIENT), TRUSTED) is None
    assert client_ip("testclient", xff(CLIENT), TRUSTED) == "testclient"


def test_trusted_peer_without_forwarding_headers_is_itself() -> None:
    assert client_ip(LB, [("Host", "example.com")], TRUSTED) == LB
