"""Registry records as text: ``grant`` options and grant CSV rows in, ``show``/``history`` text and JSON out.

Pure functions, no chain access: the encodings are those of contracts/README.md (ComplianceRegistry,
``IComplianceRegistry.RecordInput``). The only check that needs the chain, the expiry window
``now < validUntil <= now + MAX_VALIDITY``, takes ``now`` (the latest block time) as an argument.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, TextIO, TypeVar

from eth_hash.auto import keccak

from app.chain.changes import reason_text  # one rule for showing an on-chain reason (audit and CLI)
from app.chain.iso3166 import UnknownCountryError, country_by_numeric, parse_country
from app.settings import EligibilityRule

T = TypeVar("T")

MAX_BATCH = 100  # ComplianceRegistry.MAX_BATCH
MAX_VALIDITY = 5 * 365 * 86400  # ComplianceRegistry.MAX_VALIDITY, seconds
DAY = 86400

# Domain separators for the hashes this CLI derives; a hash of one kind can never equal one of another kind.
SUBJECT_DOMAIN = b"portcullis:registry:subject:v1:"
EVIDENCE_DOMAIN = b"portcullis:registry:evidence:v1:"
EVIDENCE_FIELDS_DOMAIN = b"portcullis:registry:evidence-fields:v1:"

FLAG_BITS: Mapping[str, int] = MappingProxyType(
    {
        "us_person": 1 << 0,
        "appropriateness_derivatives": 1 << 1,
        "accredited": 1 << 2,
        "frozen": 1 << 3,
        "pep": 1 << 4,
    }
)
FROZEN = FLAG_BITS["frozen"]
# Bits 16..31 are free for a deployment's own meanings; they are written as bit16 .. bit31.
FIRST_FREE_BIT = 16
CLASSES: Mapping[str, int] = MappingProxyType({"retail": 1, "professional": 2, "eligible_counterparty": 3})
KYC_LEVELS: Mapping[str, int] = MappingProxyType({"simplified": 1, "standard": 2, "enhanced": 3})
AML_RISKS: Mapping[str, int] = MappingProxyType({"low": 1, "medium": 2, "high": 3})
DEFAULT_AML_RISK = "1"

CSV_REQUIRED = ("address", "residence", "class", "kyc_level", "valid_until")
CSV_OPTIONAL = ("aml_risk", "flags", "subject", "evidence")
MAX_REPORTED_PROBLEMS = 50  # a CSV's problems are reported at once, up to this many

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BYTES32 = re.compile(r"0x[0-9a-fA-F]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RegistryInputError(ValueError):
    """Input the CLI refuses before touching the chain; the message is one line for the operator."""


class AddressFormatError(RegistryInputError):
    """Not an address, or mixed case with a wrong EIP-55 checksum."""


class FieldError(RegistryInputError):
    """One grant field is invalid; ``field`` is its CSV column name (``--`` + dashes for the option)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class ReasonError(RegistryInputError):
    """A revocation or freeze reason that does not fit a bytes32."""


class CsvError(RegistryInputError):
    """The grant CSV has bad rows; nothing was sent. ``problems`` holds (line number, message) pairs: every
    problem of every row (each row is checked against every rule), in line order."""

    def __init__(self, source: str, problems: list[tuple[int, str]]) -> None:
        problems = sorted(problems, key=lambda problem: problem[0])
        shown = "; ".join(f"line {line}: {message}" for line, message in problems[:MAX_REPORTED_PROBLEMS])
        more = len(problems) - MAX_REPORTED_PROBLEMS
        bad = len({line for line, _ in problems})
        rows = "1 bad row" if bad == 1 else f"{bad} bad rows"
        tail = f"; and {more} more problems" if more > 0 else ""
        super().__init__(f"{source}: {rows}, nothing sent: {shown}{tail}")
        self.problems = problems


@dataclass(frozen=True)
class RecordInput:
    """``IComplianceRegistry.RecordInput``, field for field."""

    residence: int
    investor_class: int
    kyc_level: int
    aml_risk: int
    flags: int
    valid_until: int
    subject_id: bytes
    evidence_ref: bytes

    def as_abi(self) -> tuple[int, int, int, int, int, int, bytes, bytes]:
        return (
            self.residence,
            self.investor_class,
            self.kyc_level,
            self.aml_risk,
            self.flags,
            self.valid_until,
            self.subject_id,
            self.evidence_ref,
        )


@dataclass(frozen=True)
class Grant:
    account: str  # EIP-55 checksummed
    record: RecordInput


@dataclass(frozen=True)
class GrantRow:
    line: int  # line number in the CSV file (the header is line 1)
    grant: Grant


@dataclass(frozen=True)
class GrantText:
    """A grant as the operator typed it: the command-line options or one CSV row."""

    address: str
    residence: str
    investor_class: str
    kyc_level: str
    valid_until: str
    aml_risk: str | None = None
    flags: str | None = None
    subject: str | None = None
    evidence: str | None = None


# ---------------------------------------------------------------- addresses and hashes


def checksum_address(address: str) -> str:
    """EIP-55 mixed-case checksum encoding of a 0x-prefixed 20-byte hex address."""
    body = address[2:].lower()
    digest = keccak(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(body, digest[:40], strict=True))


def parse_address(text: str) -> str:
    """The checksummed address. Accepts the EIP-55 checksummed form or all lowercase; refuses anything else
    (a mixed-case address with a wrong checksum is a mistyped address)."""
    value = text.strip()
    if not _ADDRESS.fullmatch(value):
        raise AddressFormatError(f"{text!r} is not an address: expected 0x followed by 40 hex digits")
    checksummed = checksum_address(value)
    if value[2:] != value[2:].lower() and value != checksummed:
        raise AddressFormatError(
            f"{value} has a wrong EIP-55 checksum (mistyped?): give it checksummed or all lowercase"
        )
    return checksummed


def hash32(domain: bytes, data: bytes) -> bytes:
    digest: bytes = keccak(domain + data)
    return digest


def _explicit_bytes32(field: str, text: str) -> bytes | None:
    value = text.strip()
    if not _BYTES32.fullmatch(value):
        return None
    raw = bytes.fromhex(value[2:])
    if raw == bytes(32):
        raise FieldError(field, "must not be zero")
    return raw


def subject_id(text: str | None, account: str) -> bytes:
    """``0x`` + 64 hex digits as given; otherwise keccak256(SUBJECT_DOMAIN + UTF-8 text). Without a subject,
    the wallet is its own subject: the text is its checksummed address."""
    value = account if text is None else text.strip()
    if not value:
        raise FieldError("subject", "is empty")
    explicit = _explicit_bytes32("subject", value)
    return explicit if explicit is not None else hash32(SUBJECT_DOMAIN, value.encode())


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def fields_hash(account: str, record: RecordInput) -> bytes:
    """The default evidenceRef: keccak256(EVIDENCE_FIELDS_DOMAIN + abi.encode(account, residence,
    investorClass, kycLevel, amlRisk, flags, validUntil, subjectId)); every field is a static type, so
    abi.encode is one 32-byte word each."""
    words = [
        _word(int(account, 16)),
        _word(record.residence),
        _word(record.investor_class),
        _word(record.kyc_level),
        _word(record.aml_risk),
        _word(record.flags),
        _word(record.valid_until),
        record.subject_id,
    ]
    return hash32(EVIDENCE_FIELDS_DOMAIN, b"".join(words))


def evidence_ref(text: str | None, account: str, record: RecordInput) -> bytes:
    """``0x`` + 64 hex digits as given; other text: keccak256(EVIDENCE_DOMAIN + UTF-8 text); none:
    fields_hash."""
    if text is None or not text.strip():
        return fields_hash(account, record)
    explicit = _explicit_bytes32("evidence", text)
    return explicit if explicit is not None else hash32(EVIDENCE_DOMAIN, text.strip().encode())


def reason_bytes32(text: str) -> bytes:
    """A revocation or freeze reason: its UTF-8 bytes, right-padded with zeros to 32 bytes."""
    raw = text.strip().encode()
    if not raw:
        raise ReasonError("--reason: is empty (the registry requires a reason)")
    if len(raw) > 32:
        raise ReasonError(
            f"--reason: {len(raw)} bytes in UTF-8, at most 32 fit in a bytes32 (use a case number)"
        )
    return raw.ljust(32, b"\x00")


# ---------------------------------------------------------------- codes, flags and dates


def _ranked(field: str, text: str, names: Mapping[str, int]) -> int:
    value = text.strip().lower().replace("-", "_")
    if value in names:
        return names[value]
    if value.isascii() and value.isdigit() and int(value) in names.values():
        return int(value)
    choices = ", ".join(f"{name} ({number})" for name, number in names.items())
    raise FieldError(field, f"{text!r} is not one of {choices}")


def parse_class(text: str) -> int:
    return _ranked("class", text, CLASSES)


def parse_kyc_level(text: str) -> int:
    return _ranked("kyc_level", text, KYC_LEVELS)


def parse_aml_risk(text: str) -> int:
    return _ranked("aml_risk", text, AML_RISKS)


def _flag_bit(token: str) -> int:
    name = token.lower().replace("-", "_")
    if name == "frozen":
        raise FieldError("flags", "frozen is set with `registry freeze`, not by a grant")
    if name in FLAG_BITS:
        return FLAG_BITS[name]
    match = re.fullmatch(r"bit(\d{1,2})", name)
    if match and FIRST_FREE_BIT <= int(match.group(1)) <= 31:
        return 1 << int(match.group(1))
    known = ", ".join(n for n in FLAG_BITS if n != "frozen")
    raise FieldError("flags", f"unknown flag {token!r}: known are {known}, and bit16..bit31")


def parse_flags(text: str | None) -> int:
    """Flag names separated by commas, semicolons, bars or blanks; ``bit16``..``bit31`` for own meanings."""
    flags = 0
    for token in re.split(r"[,;|\s]+", text or ""):
        if token:
            flags |= _flag_bit(token)
    return flags


def parse_valid_until(text: str) -> int:
    """Unix seconds. ``YYYY-MM-DD`` means valid through that whole day (UTC): the record expires at the next
    midnight. An RFC 3339 time with an offset (``2027-06-30T12:00:00Z``) is taken as the expiry itself."""
    value = text.strip()
    try:
        if _DATE.fullmatch(value):
            day = date.fromisoformat(value)
            return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + DAY
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise FieldError(
            "valid_until",
            f"{text!r} is not a date: expected YYYY-MM-DD (valid through that day, UTC) "
            "or an RFC 3339 time with offset",
        )
    return int(moment.timestamp())


def last_valid_day(valid_until: int) -> date:
    """The last day (UTC) on which a record with this expiry is valid."""
    return datetime.fromtimestamp(valid_until - 1, UTC).date()


def iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_expiry(valid_until: int, now: int) -> None:
    """The contract's window: ``now < validUntil <= now + MAX_VALIDITY``, with ``now`` the chain's time."""
    if valid_until <= now:
        raise FieldError(
            "valid_until",
            f"{last_valid_day(valid_until).isoformat()} is in the past (chain time {iso_time(now)})",
        )
    if valid_until > now + MAX_VALIDITY:
        latest = datetime.fromtimestamp(now + MAX_VALIDITY, UTC).date() - timedelta(days=1)
        raise FieldError(
            "valid_until",
            f"{last_valid_day(valid_until).isoformat()} is more than 5 years (1825 days) ahead: "
            f"the latest allowed date is {latest.isoformat()}",
        )


# ---------------------------------------------------------------- grants


def parse_grant(text: GrantText) -> Grant:
    """A grant from text. Everything but the expiry window is checked here (see check_expiry)."""
    grant, _, errors = check_grant(text)
    if errors:
        raise errors[0]
    assert grant is not None
    return grant


def _account(text: str) -> str:
    account = parse_address(text)
    if int(account, 16) == 0:
        raise FieldError("address", "the zero address cannot hold a record")
    return account


def _residence(text: str) -> int:
    try:
        return parse_country(text).numeric
    except UnknownCountryError as exc:
        raise FieldError("residence", str(exc)) from None


def check_grant(
    text: GrantText, now: int | None = None
) -> tuple[Grant | None, str | None, list[RegistryInputError]]:
    """Every rule on every field of one grant: (the grant if all pass, the account if it parses, every
    problem in column order). An empty required text is not parsed (the CSV reader reports it as empty);
    with ``now`` the expiry window is checked too."""
    errors: list[RegistryInputError] = []

    def attempt(parse: Callable[[], T]) -> T | None:
        try:
            return parse()
        except RegistryInputError as exc:
            errors.append(exc)
            return None

    account = attempt(lambda: _account(text.address)) if text.address else None
    residence = attempt(lambda: _residence(text.residence)) if text.residence else None
    investor_class = attempt(lambda: parse_class(text.investor_class)) if text.investor_class else None
    kyc_level = attempt(lambda: parse_kyc_level(text.kyc_level)) if text.kyc_level else None
    aml_risk = attempt(lambda: parse_aml_risk(text.aml_risk or DEFAULT_AML_RISK))
    flags = attempt(lambda: parse_flags(text.flags))
    valid_until = attempt(lambda: parse_valid_until(text.valid_until)) if text.valid_until else None
    if valid_until is not None and now is not None:
        attempt(lambda: check_expiry(valid_until, now))
    subject = attempt(lambda: subject_id(text.subject, account or "")) if account or text.subject else None
    if text.evidence is not None and text.evidence.strip():
        attempt(lambda: _explicit_bytes32("evidence", text.evidence or ""))
    if errors:
        return None, account, errors
    if None in (account, residence, investor_class, kyc_level, aml_risk, flags, valid_until, subject):
        return None, account, errors  # an empty required text: reported by the caller
    assert account is not None and subject is not None and valid_until is not None
    assert residence is not None and investor_class is not None and kyc_level is not None
    assert aml_risk is not None and flags is not None
    record = RecordInput(
        residence, investor_class, kyc_level, aml_risk, flags, valid_until, subject, bytes(32)
    )
    grant = Grant(account, replace(record, evidence_ref=evidence_ref(text.evidence, account, record)))
    return grant, account, errors


def _cell(row: Mapping[str, str | None], column: str) -> str | None:
    value = row.get(column)
    return value.strip() if value is not None and value.strip() else None


def _row_text(row: Mapping[str, str | None]) -> tuple[GrantText, list[str]]:
    """The row as a GrantText (empty required cells as ""), and a problem naming those cells."""
    missing = [column for column in CSV_REQUIRED if _cell(row, column) is None]
    text = GrantText(
        address=_cell(row, "address") or "",
        residence=_cell(row, "residence") or "",
        investor_class=_cell(row, "class") or "",
        kyc_level=_cell(row, "kyc_level") or "",
        valid_until=_cell(row, "valid_until") or "",
        aml_risk=_cell(row, "aml_risk"),
        flags=_cell(row, "flags"),
        subject=_cell(row, "subject"),
        evidence=_cell(row, "evidence"),
    )
    return text, [f"empty {', '.join(missing)}"] if missing else []


def _check_header(source: str, header: Sequence[str] | None) -> None:
    columns = [c.strip() for c in header or []]
    missing = [c for c in CSV_REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {', '.join(unknown)}")
        allowed = ", ".join(CSV_REQUIRED + CSV_OPTIONAL)
        raise CsvError(source, [(1, f"{'; '.join(problems)} (columns: {allowed})")])


def _rows(reader: csv.DictReader[str]) -> Iterable[tuple[int, dict[str, str | None]]]:
    for raw in reader:
        row = {(k or "").strip(): v for k, v in raw.items()}
        if not any((v or "").strip() for v in row.values()):
            continue  # blank line
        if (row.get("address") or "").lstrip().startswith("#"):
            continue  # comment line
        if None in raw or "" in row:
            yield reader.line_num, {"": "more cells than columns"}
            continue
        yield reader.line_num, row


def read_grant_csv(stream: TextIO, source: str, now: int | None = None) -> list[GrantRow]:
    """Every row of a grant CSV, or CsvError naming every problem of every bad row by its line number: each
    row is checked against every rule (its cells, a wallet already on another line, and with ``now`` the
    expiry window), so one run reports them all."""
    reader = csv.DictReader(stream, skipinitialspace=True)
    _check_header(source, reader.fieldnames)
    grants: list[GrantRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for line, row in _rows(reader):
        if "" in row:
            problems.append((line, row[""] or "malformed row"))
            continue
        text, empty = _row_text(row)
        grant, account, errors = check_grant(text, now)
        found = empty + [str(error) for error in errors]
        if account is not None and account in seen:
            found.append(f"address {account} is already on line {seen[account]}")
        elif account is not None:
            seen[account] = line
        problems += [(line, message) for message in found]
        if grant is not None and not found:
            grants.append(GrantRow(line, grant))
    if problems:
        raise CsvError(source, problems)
    if not grants:
        raise CsvError(source, [(1, "no rows to grant")])
    return grants


def check_rows_expiry(source: str, rows: list[GrantRow], now: int) -> None:
    """check_expiry for every row, reported like the other row errors."""
    problems = []
    for row in rows:
        try:
            check_expiry(row.grant.record.valid_until, now)
        except FieldError as exc:
            problems.append((row.line, str(exc)))
    if problems:
        raise CsvError(source, problems)


# ---------------------------------------------------------------- stored records


RECORD_ABI_FIELDS = (
    "residence",
    "investorClass",
    "kycLevel",
    "amlRisk",
    "flags",
    "validUntil",
    "verifiedAt",
    "attester",
    "revokedAt",
    "subjectId",
    "evidenceRef",
    "revocationReason",
)


@dataclass(frozen=True)
class StoredRecord:
    """``IComplianceRegistry.Record`` as getRecord returns it."""

    residence: int
    investor_class: int
    kyc_level: int
    aml_risk: int
    flags: int
    valid_until: int
    verified_at: int
    attester: str
    revoked_at: int
    subject_id: bytes
    evidence_ref: bytes
    revocation_reason: bytes

    @classmethod
    def from_abi(cls, values: Sequence[Any] | Mapping[str, Any]) -> StoredRecord:
        """From a call result (a tuple) or a decoded event argument (a mapping keyed by ABI field names)."""
        if isinstance(values, Mapping):
            return cls(*(values[name] for name in RECORD_ABI_FIELDS))
        return cls(*values)

    @property
    def exists(self) -> bool:
        return self.verified_at != 0


def already_applied(wanted: RecordInput, stored: StoredRecord) -> bool:
    """Whether writing ``wanted`` would change nothing but verifiedAt: the record exists, is not revoked and
    holds the same fields (FROZEN aside: a grant keeps it anyway)."""
    if not stored.exists or stored.revoked_at != 0:
        return False
    have = (
        stored.residence,
        stored.investor_class,
        stored.kyc_level,
        stored.aml_risk,
        stored.flags & ~FROZEN,
    )
    want = (
        wanted.residence,
        wanted.investor_class,
        wanted.kyc_level,
        wanted.aml_risk,
        wanted.flags & ~FROZEN,
    )
    return have == want and (stored.valid_until, stored.subject_id, stored.evidence_ref) == (
        wanted.valid_until,
        wanted.subject_id,
        wanted.evidence_ref,
    )


# ---------------------------------------------------------------- records as text for people and --json


def flag_names(flags: int) -> list[str]:
    names = [name for name, bit in FLAG_BITS.items() if flags & bit]
    known = sum(FLAG_BITS.values())
    names += [f"bit{i}" for i in range(32) if flags & ~known & (1 << i)]
    return names


def country_text(numeric: int) -> str:
    country = country_by_numeric(numeric)
    return country.alpha2 if country else f"#{numeric}"


def class_name(number: int) -> str:
    return next((name for name, n in CLASSES.items() if n == number), str(number))


def describe_input(record: RecordInput | StoredRecord) -> dict[str, Any]:
    return {
        "residence": country_text(record.residence),
        "residence_numeric": record.residence,
        "class": class_name(record.investor_class),
        "kyc_level": record.kyc_level,
        "aml_risk": record.aml_risk,
        "flags": flag_names(record.flags),
        "flags_value": record.flags,
        "valid_until": last_valid_day(record.valid_until).isoformat(),
        "expires_at": iso_time(record.valid_until),
        "subject_id": "0x" + record.subject_id.hex(),
        "evidence_ref": "0x" + record.evidence_ref.hex(),
    }


def summary_line(record: RecordInput | StoredRecord) -> str:
    flags = ",".join(flag_names(record.flags)) or "-"
    return (
        f"{country_text(record.residence)} {class_name(record.investor_class)} kyc {record.kyc_level} "
        f"aml {record.aml_risk} flags {flags} valid until {last_valid_day(record.valid_until).isoformat()}"
    )


def describe_stored(record: StoredRecord, now: int) -> dict[str, Any]:
    status = "active"
    if record.revoked_at:
        status = "revoked"
    elif record.flags & FROZEN:
        status = "frozen"
    elif record.valid_until <= now:
        status = "expired"
    return {
        **describe_input(record),
        "status": status,
        "verified_at": iso_time(record.verified_at),
        "attester": record.attester,
        "revoked": record.revoked_at != 0,
        "revoked_at": iso_time(record.revoked_at) if record.revoked_at else None,
        "revocation_reason": reason_text(record.revocation_reason) if record.revoked_at else None,
        "frozen": bool(record.flags & FROZEN),
    }


def describe_rule(rule: EligibilityRule) -> dict[str, Any]:
    return {
        "required_flags": flag_names(rule.required_flags),
        "forbidden_flags": flag_names(rule.forbidden_flags),
        "min_class": class_name(rule.min_investor_class),
        "min_kyc_level": rule.min_kyc_level,
        "max_aml_risk": rule.max_aml_risk,
    }
