"""`portcullis registry` without a chain: ISO 3166-1 codes, addresses, flags, dates, hashes, the grant CSV,
and the sentence for every custom error of the ComplianceRegistry ABI."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from app.chain.iso3166 import COUNTRIES, UnknownCountryError, parse_country
from app.cli import registry
from app.cli import registry_csv as rc

ISO_CODES_JSON = Path("/usr/share/iso-codes/json/iso_3166-1.json")
NOW = int(datetime(2026, 1, 15, 12, tzinfo=UTC).timestamp())
WALLET = "0x" + "ab" * 20


# ---------------------------------------------------------------- countries


@pytest.mark.parametrize("code", ["DE", "de", "DEU", "deu", "276", " DE "])
def test_country_alpha2_alpha3_numeric(code: str) -> None:
    country = parse_country(code)
    assert (country.alpha2, country.alpha3, country.numeric) == ("DE", "DEU", 276)


def test_country_numeric_without_leading_zeros() -> None:
    assert parse_country("40").alpha2 == "AT" and parse_country("040").alpha2 == "AT"
    assert parse_country("4").alpha2 == "AF"


@pytest.mark.parametrize("code", ["XX", "XK", "ZZZ", "0", "999", "1000", "", "Germany", "D E", "٢٧٦"])
def test_unknown_country_names_what_was_given(code: str) -> None:
    with pytest.raises(UnknownCountryError) as info:
        parse_country(code)
    assert repr(code) in str(info.value) and "alpha-2" in str(info.value)


def test_country_table_is_complete_and_unique() -> None:
    assert len(COUNTRIES) == 249
    for column in range(3):
        assert len({c[column] for c in COUNTRIES}) == 249
    assert all(1 <= c.numeric <= 999 for c in COUNTRIES)


def test_country_table_matches_debian_iso_codes() -> None:
    if not ISO_CODES_JSON.is_file():
        pytest.skip(f"{ISO_CODES_JSON} missing (Debian package iso-codes)")
    reference = json.loads(ISO_CODES_JSON.read_text())["3166-1"]
    expected = {(c["alpha_2"], c["alpha_3"], int(c["numeric"])) for c in reference}
    assert {(c.alpha2, c.alpha3, c.numeric) for c in COUNTRIES} == expected


# ---------------------------------------------------------------- addresses


def test_checksum_matches_eth_utils() -> None:
    for _ in range(50):
        address = Account.create().address
        assert rc.checksum_address(address.lower()) == to_checksum_address(address.lower())


def test_address_checksum_policy() -> None:
    account = Account.create().address
    assert rc.checksum_address(account.lower()) == account
    assert rc.parse_address(account) == account
    assert rc.parse_address(account.lower()) == account
    wrong = account[:2] + account[2:].swapcase()
    if wrong[2:] != wrong[2:].lower():  # mixed case with every letter flipped: a wrong checksum
        with pytest.raises(rc.AddressFormatError, match="wrong EIP-55 checksum"):
            rc.parse_address(wrong)
    with pytest.raises(rc.AddressFormatError, match="wrong EIP-55 checksum"):
        rc.parse_address("0x" + "AB" * 20)  # all upper case is not the checksummed form either
    for bad in ("0x1234", "ab" * 20, "0x" + "g" * 40, "alice.eth"):
        with pytest.raises(rc.AddressFormatError, match="not an address"):
            rc.parse_address(bad)


# ---------------------------------------------------------------- fields


def test_classes_levels_and_flags() -> None:
    assert [rc.parse_class(t) for t in ("retail", "Professional", "eligible-counterparty", "3")] == [
        1,
        2,
        3,
        3,
    ]
    assert rc.parse_kyc_level("2") == 2 and rc.parse_kyc_level("enhanced") == 3
    assert rc.parse_aml_risk("high") == 3
    for bad in ("0", "4", "pro"):
        with pytest.raises(rc.FieldError, match="is not one of"):
            rc.parse_class(bad)
    assert rc.parse_flags("us_person,appropriateness_derivatives") == 0b11
    assert rc.parse_flags("pep; accredited | bit16") == (1 << 4) | (1 << 2) | (1 << 16)
    assert rc.parse_flags(None) == 0 and rc.parse_flags("") == 0
    with pytest.raises(rc.FieldError, match="registry freeze"):
        rc.parse_flags("frozen")
    with pytest.raises(rc.FieldError, match="unknown flag 'bit5'"):
        rc.parse_flags("bit5")  # reserved for the registry
    with pytest.raises(rc.FieldError, match="unknown flag 'vip'"):
        rc.parse_flags("vip")
    assert rc.flag_names((1 << 3) | (1 << 1) | (1 << 20)) == [
        "appropriateness_derivatives",
        "frozen",
        "bit20",
    ]


def test_valid_until_dates_and_window() -> None:
    end_of_day = int(datetime(2027, 7, 1, tzinfo=UTC).timestamp())
    assert rc.parse_valid_until("2027-06-30") == end_of_day
    assert rc.last_valid_day(end_of_day).isoformat() == "2027-06-30"
    assert rc.parse_valid_until("2027-06-30T12:00:00Z") == end_of_day - 12 * 3600
    assert rc.parse_valid_until("2027-06-30T14:00:00+02:00") == end_of_day - 12 * 3600
    for bad in ("30.06.2027", "2027-02-30", "2027-06-30T12:00:00", "soon"):
        with pytest.raises(rc.FieldError, match="is not a date"):
            rc.parse_valid_until(bad)
    rc.check_expiry(NOW + 1, NOW)
    rc.check_expiry(NOW + rc.MAX_VALIDITY, NOW)
    with pytest.raises(rc.FieldError, match="in the past"):
        rc.check_expiry(NOW, NOW)
    with pytest.raises(rc.FieldError, match="more than 5 years") as info:
        rc.check_expiry(NOW + rc.MAX_VALIDITY + 1, NOW)
    latest = info.value.reason.rsplit(" ", 1)[1]
    rc.check_expiry(rc.parse_valid_until(latest), NOW)  # the date the message offers is accepted


def test_reason_is_right_padded_utf8() -> None:
    assert rc.reason_bytes32("AML-CASE-1") == b"AML-CASE-1".ljust(32, b"\x00")
    assert rc.reason_bytes32("é" * 16) == ("é" * 16).encode()
    with pytest.raises(rc.ReasonError, match="33 bytes"):
        rc.reason_bytes32("x" * 33)
    with pytest.raises(rc.ReasonError, match="34 bytes in UTF-8"):
        rc.reason_bytes32("é" * 17)
    with pytest.raises(rc.ReasonError, match="empty"):
        rc.reason_bytes32("  ")
    assert registry.rc.reason_text(rc.reason_bytes32("AML-CASE-1")) == "AML-CASE-1"


def test_subject_and_evidence_hashes_are_domain_separated() -> None:
    account = rc.checksum_address(WALLET)
    assert rc.subject_id("cust-42", account) == keccak(b"portcullis:registry:subject:v1:cust-42")
    assert rc.subject_id(None, account) == keccak(b"portcullis:registry:subject:v1:" + account.encode())
    explicit = "0x" + "11" * 32
    assert rc.subject_id(explicit, account) == bytes.fromhex("11" * 32)
    with pytest.raises(rc.FieldError, match="must not be zero"):
        rc.subject_id("0x" + "00" * 32, account)
    grant = rc.parse_grant(
        rc.GrantText(WALLET, "DE", "professional", "2", "2027-06-30", flags="appropriateness_derivatives")
    )
    record = grant.record
    words = encode(
        ["address", "uint16", "uint8", "uint8", "uint8", "uint32", "uint64", "bytes32"],
        [account, 276, 2, 2, 1, 2, record.valid_until, record.subject_id],
    )
    assert record.evidence_ref == keccak(b"portcullis:registry:evidence-fields:v1:" + words)
    assert rc.evidence_ref("KYC-2026-0042", account, record) == keccak(
        b"portcullis:registry:evidence:v1:KYC-2026-0042"
    )
    assert record.aml_risk == 1  # the documented default


# ---------------------------------------------------------------- the grant CSV

HEADER = "address,residence,class,kyc_level,aml_risk,flags,valid_until,subject,evidence\n"


def row(i: int, **cells: str) -> str:
    values = {
        "address": "0x" + f"{i:040x}",
        "residence": "DE",
        "class": "retail",
        "kyc_level": "2",
        "aml_risk": "1",
        "flags": "appropriateness_derivatives",
        "valid_until": "2027-06-30",
        "subject": f"cust-{i}",
        "evidence": "",
    }
    values.update(cells)
    return ",".join(values.values()) + "\n"


def test_csv_rows_carry_their_line_numbers() -> None:
    text = HEADER + row(1) + "\n# a comment\n" + row(2, flags='"us_person,pep"') + row(3, aml_risk="")
    rows = rc.read_grant_csv(io.StringIO(text), "g.csv")
    assert [r.line for r in rows] == [2, 5, 6]
    assert rows[1].grant.record.flags == (1 << 0) | (1 << 4)
    assert rows[2].grant.record.aml_risk == 1


def test_csv_reports_every_bad_row_with_its_line() -> None:
    text = HEADER + row(1) + row(2, residence="XX") + row(3) + row(4, valid_until="tomorrow") + row(1)
    with pytest.raises(rc.CsvError) as info:
        rc.read_grant_csv(io.StringIO(text), "g.csv")
    message = str(info.value)
    assert message.startswith("g.csv: 3 bad rows, nothing sent: line 3: residence: unknown country code 'XX'")
    assert "line 5: valid_until: 'tomorrow' is not a date" in message
    assert "line 6: address 0x0000000000000000000000000000000000000001 is already on line 2" in message
    assert [line for line, _ in info.value.problems] == [3, 5, 6]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("address,residence\n", "missing column(s) class, kyc_level, valid_until"),
        (HEADER.replace("flags", "flag"), "unknown column(s) flag"),
        (HEADER, "no rows to grant"),
        (HEADER + row(1).rstrip("\n") + ",extra\n", "line 2: more cells than columns"),
        (
            HEADER + "0x" + "00" * 20 + ",DE,retail,2,1,,2027-06-30,,\n",
            "the zero address cannot hold a record",
        ),
        (HEADER + ",DE,retail,2,1,,2027-06-30,,\n", "line 2: empty address"),
    ],
)
def test_csv_structure_errors(text: str, expected: str) -> None:
    with pytest.raises(rc.CsvError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        rc.read_grant_csv(io.StringIO(text), "g.csv")


def test_csv_example_in_the_docs_parses() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "REGISTRY_CLI.md").read_text()
    example = docs.split("```csv\n", 1)[1].split("```", 1)[0]
    rows = rc.read_grant_csv(io.StringIO(example), "example.csv")
    assert [r.line for r in rows] == [2, 3, 5]
    assert [r.grant.record.residence for r in rows] == [276, 250, 756]
    assert rows[1].grant.record.flags == (1 << 1) | (1 << 4) and rows[1].grant.record.aml_risk == 1
    assert rows[2].grant.record.subject_id.hex().startswith("5e1f0c3a")


def test_csv_expiry_checked_against_chain_time() -> None:
    rows = rc.read_grant_csv(io.StringIO(HEADER + row(1) + row(2, valid_until="2020-01-01")), "g.csv")
    with pytest.raises(rc.CsvError, match="line 3: valid_until: 2020-01-01 is in the past"):
        rc.check_rows_expiry("g.csv", rows, NOW)


# ---------------------------------------------------------------- revert sentences


def sample(kind: str) -> object:
    return {
        "address": "0x" + "cd" * 20,
        "bytes32": keccak(b"ATTESTER_ROLE"),
        "uint256": 101,
        "uint64": NOW,
        "uint16": 1000,
        "uint8": 4,
    }[kind]


def test_every_abi_error_decodes_to_a_sentence() -> None:
    abi = registry.load_abi()
    decoder = registry.RevertDecoder(abi)
    errors = [e for e in abi if e["type"] == "error"]
    assert {e["name"] for e in errors} == set(registry.REVERT_SENTENCES)
    for entry in errors:
        types = [i["type"] for i in entry["inputs"]]
        data = keccak(registry.abi_signature(entry).encode())[:4] + encode(types, [sample(t) for t in types])
        error = decoder.decode(data)
        assert error.error == entry["name"]
        assert "reverted with" not in str(error) and "{" not in str(error), str(error)
    missing_role = decoder.decode(
        keccak(b"AccessControlUnauthorizedAccount(address,bytes32)")[:4]
        + encode(["address", "bytes32"], [sample("address"), keccak(b"REVOKER_ROLE")])
    )
    assert isinstance(missing_role, registry.MissingRoleError)
    signer = to_checksum_address("0x" + "cd" * 20)
    assert str(missing_role).startswith(f"the signer {signer} lacks REVOKER_ROLE on this registry")
    assert isinstance(decoder.decode(keccak(b"EnforcedPause()")[:4]), registry.RegistryPausedError)
    assert "unknown" not in str(decoder.decode(b"")) and "no reason" in str(decoder.decode(b""))
    assert "0xdeadbeef" in str(decoder.decode(bytes.fromhex("deadbeef")))
    text = decoder.decode(bytes.fromhex("08c379a0") + encode(["string"], ["nope"]))
    assert str(text) == "the registry reverted: nope"


def test_rpc_urls_are_redacted() -> None:
    assert registry.redact_url("https://mainnet.example.io/v3/SECRET?key=x") == "https://mainnet.example.io"
    assert registry.redact_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545"
    assert registry.dev_chain_urls("http://127.0.0.1:8000/") == (
        "http://127.0.0.1:8000/dev/chain/rpc",
        "http://127.0.0.1:8000/dev/chain/info",
    )


def test_csv_reports_every_kind_of_problem_in_one_round() -> None:
    """Bad values, a duplicate wallet and a past date, several in one row: all reported by one read."""
    text = (
        HEADER
        + row(1)
        + row(2, residence="XX", kyc_level="9", flags="nope")  # three bad cells in one row
        + row(1, valid_until="2020-01-01")  # a duplicate of line 2, and in the past
        + row(3, address="0x123", valid_until="someday")
        + row(4, residence="", evidence="0x" + "00" * 32)
    )
    with pytest.raises(rc.CsvError) as info:
        rc.read_grant_csv(io.StringIO(text), "g.csv", now=NOW)
    problems = info.value.problems
    assert [line for line, _ in problems] == [3, 3, 3, 4, 4, 5, 5, 6, 6]
    messages = [message for _, message in problems]
    assert messages[0].startswith("residence: unknown country code 'XX'")
    assert messages[1].startswith("kyc_level: '9' is not one of")
    assert messages[2].startswith("flags: unknown flag 'nope'")
    assert messages[3].startswith("valid_until: 2020-01-01 is in the past")
    assert messages[4] == "address 0x0000000000000000000000000000000000000001 is already on line 2"
    assert messages[5].startswith("'0x123' is not an address")
    assert messages[6].startswith("valid_until: 'someday' is not a date")
    assert messages[7] == "empty residence"
    assert messages[8] == "evidence: must not be zero"
    assert str(info.value).startswith("g.csv: 4 bad rows, nothing sent: line 3: residence: unknown country")


def test_csv_problems_are_reported_up_to_a_limit() -> None:
    text = HEADER + "".join(row(i, residence="XX", kyc_level="9") for i in range(1, 41))
    with pytest.raises(rc.CsvError) as info:
        rc.read_grant_csv(io.StringIO(text), "g.csv")
    assert len(info.value.problems) == 80
    message = str(info.value)
    assert message.startswith("g.csv: 40 bad rows, nothing sent: ")
    assert message.count("line ") == rc.MAX_REPORTED_PROBLEMS and message.endswith("; and 30 more problems")
