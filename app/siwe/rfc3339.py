"""RFC 3339 section 5.6 ``date-time``, parsed to an aware UTC ``datetime``.

Accepted: ``YYYY-MM-DD"T"hh:mm:ss[.frac](Z|+hh:mm|-hh:mm)`` with "T" and "Z" in either case (RFC
3339 5.6 note), any number of fraction digits, any offset up to 23:59. The date must exist in the
calendar (2022-02-31 is refused) and the instant must be representable in UTC (years 1-9999).
Refused although RFC 3339 allows it: a leap second (``:60``), which ``datetime`` cannot hold and
no wallet emits. Fractions beyond microseconds are truncated; the caller keeps the signed string
unchanged, only comparisons use the truncated instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# The exact RFC 3339 shape; datetime.fromisoformat alone would also take ISO 8601 variants that
# RFC 3339 does not allow (week dates, missing seconds, a space separator, no offset, ...).
DATE_TIME_PATTERN = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
DATE_TIME = re.compile(DATE_TIME_PATTERN)


def parse_date_time(value: str) -> datetime:
    """The aware UTC instant of an RFC 3339 date-time; ``ValueError`` saying why if it is not one."""
    if DATE_TIME.fullmatch(value) is None:
        raise ValueError("not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.frac] then Z or +hh:mm)")
    return instant(value)


def instant(value: str) -> datetime:
    """Like ``parse_date_time`` for a value already known to match ``DATE_TIME_PATTERN``."""
    if value[17:19] == "60":
        raise ValueError("leap seconds (:60) are not supported")
    try:
        # Given the shape above, fromisoformat (C code, ~10x faster than assembling the fields by
        # hand) checks the calendar: month, day within the month (leap years too), hour, minute,
        # second. It wants upper-case T and Z, which RFC 3339 makes equivalent to lower case.
        moment = datetime.fromisoformat(value.upper())
        # "Z" already gives UTC; only explicit offsets need converting.
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not a real calendar date and time in years 1-9999 UTC") from None
