"""Time as integer nanoseconds since the epoch, and its RFC 3339 text.

Integers keep the seed's nanosecond digits exact and make window arithmetic plain addition.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339(text: str) -> int:
    """Parse RFC 3339 (``Z`` or an offset; no offset means UTC) into ns. Raises ValueError."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    base = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    ns = int((base - _EPOCH).total_seconds()) * NS_PER_S
    if frac:
        ns += int(frac.ljust(9, "0"))
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS_PER_S
    return ns


_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896
"""Days since the epoch of 0001-01-01 and 9999-12-31, the range datetime can format."""


@lru_cache(maxsize=4096)
def _day_text(days: int) -> str:
    return datetime.fromtimestamp(days * 86_400, UTC).strftime("%Y-%m-%dT")


def _strftime_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    """The whole-second part; cached, as a drain formats many times within the same second.

    strftime costs microseconds and a drain misses this cache for every profile created in
    another second (``_created``): the date is formatted once per day, the time from a table.
    """
    days, rest = divmod(seconds, 86_400)
    if not _FIRST_DAY <= days <= _LAST_DAY:
        return _strftime_text(seconds)  # out of datetime's range: raises as it always did
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    two = _TWO_DIGITS
    return f"{_day_text(days)}{two[hours]}:{two[minutes]}:{two[secs]}"


def _fraction(frac: int) -> str:
    """``frac`` (1 .. 10**9 - 1 ns) as the digits after the point, trailing zeros trimmed.
    ``str`` of the number past 10**9, not ``f"{frac:09d}"``: a quarter of the cost of a whole
    format_rfc3339, called several times for every message rendered."""
    return str(frac + NS_PER_S)[1:].rstrip("0")


def format_rfc3339(ns: int) -> str:
    """Format ns as UTC RFC 3339 with ``Z``, trailing fraction zeros trimmed (Go's RFC3339Nano)."""
    seconds, frac = divmod(ns, NS_PER_S)
    if frac:
        return f"{_second_text(seconds)}.{_fraction(frac)}Z"
    return _second_text(seconds) + "Z"


@lru_cache(maxsize=4096)
def _far_future_second(seconds: int) -> str:
    when = datetime.fromtimestamp(seconds, UTC)
    day = 28 if (when.month, when.day) == (2, 29) else when.day
    return _second_text(int((when.replace(year=2099, day=day) - _EPOCH).total_seconds()))


def far_future(ns: int) -> str:
    """The exit of a current member: the trigger time moved to 2099, as the seed's example shows."""
    seconds, frac = divmod(ns, NS_PER_S)
    if frac:
        return f"{_far_future_second(seconds)}.{_fraction(frac)}Z"
    return _far_future_second(seconds) + "Z"


def ns_to_ms_ceil(ns: int) -> int:
    """Round up, so a due time in ms is never before the exact instant it stands for."""
    return -(-ns // NS_PER_MS)


def rfc3339_and_far_future(ns: int) -> tuple[str, str]:
    """``(format_rfc3339(ns), far_future(ns))``, splitting ``ns`` and formatting its fraction once
    (a drain needs both for every message it renders)."""
    seconds, frac = divmod(ns, NS_PER_S)
    tail = f".{_fraction(frac)}Z" if frac else "Z"
    return _second_text(seconds) + tail, _far_future_second(seconds) + tail
