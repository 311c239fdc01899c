"""The static CIDR table: longest-prefix match, the development default, and refusal of bad tables."""

from __future__ import annotations

import pytest

from app.risk.geo import DEVELOPMENT_TABLE, StaticCidrTable


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        ("198.51.100.7", "US"),
        ("203.0.113.250", "DE"),
        ("192.0.2.1", "FR"),
        ("2001:db8:1::5", "JP"),
        ("::ffff:203.0.113.9", "DE"),  # IPv4-mapped IPv6 counts as its IPv4 address
        ("127.0.0.1", None),
        ("10.20.30.40", None),
        ("172.31.255.1", None),
        ("192.168.1.1", None),
        ("100.64.0.1", None),
        ("::1", None),
        ("fd00::1", None),
        ("8.8.8.8", None),  # not in the table: unknown
        ("not an address", None),
        ("", None),
    ],
)
def test_development_table(ip: str, country: str | None) -> None:
    assert StaticCidrTable.development().country(ip) == country


def test_the_longest_prefix_wins_and_none_masks_a_shorter_prefix() -> None:
    table = StaticCidrTable({"198.51.0.0/16": "GB", "198.51.100.0/24": "US", "198.51.100.128/25": None})
    assert table.country("198.51.7.1") == "GB"
    assert table.country("198.51.100.1") == "US"
    assert table.country("198.51.100.200") is None


def test_v4_and_v6_entries_do_not_mix() -> None:
    table = StaticCidrTable({"::/0": "CH"})
    assert table.country("2001:db8::1") == "CH"
    assert table.country("1.2.3.4") is None


def test_the_development_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        DEVELOPMENT_TABLE["1.0.0.0/8"] = "AU"  # type: ignore[index]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"198.51.100.7/24": "US"}, "not a CIDR block"),  # host bits set
        ({"nonsense": "US"}, "not a CIDR block"),
        ({"198.51.100.0/24": "us"}, "alpha-2"),
        ({"198.51.100.0/24": "USA"}, "alpha-2"),
    ],
)
def test_bad_tables_are_refused(table: dict[str, str | None], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StaticCidrTable(table)
