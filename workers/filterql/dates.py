"""Calendar arithmetic, date math and lenient date parsing, all in integer ns (UTC).

FilterQL compares dates that arrive as JSON strings in many shapes, so parsing is lenient (the
common forms of qlbridge's dateparse) and cached: the same field value is parsed once, not once per
evaluation. Calendar arithmetic follows Go's ``AddDate`` (day overflow rolls into the next month)
because qlbridge's date math does.
"""

from __future__ import annotations

import re
from functools import lru_cache

from workers.timefmt import NS_PER_DAY, NS_PER_S

NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 3600 * NS_PER_S

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    if month == 2 and is_leap(year):
        return 29
    return _DAYS_IN_MONTH[month - 1]


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (works for any year, no datetime limits)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of :func:`days_from_civil`."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def split_ns(ns: int) -> tuple[int, int, int, int]:
    """(year, month, day, ns-into-day) of an instant."""
    days, rem = divmod(ns, NS_PER_DAY)
    y, m, d = civil_from_days(days)
    return y, m, d, rem


def month_start(ns: int) -> int:
    """First instant of the calendar month containing ``ns``."""
    y, m, _d, _r = split_ns(ns)
    return days_from_civil(y, m, 1) * NS_PER_DAY


def next_month_start(ns: int) -> int:
    """First instant of the calendar month after the one containing ``ns``."""
    y, m, _d, _r = split_ns(ns)
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return days_from_civil(y, m, 1) * NS_PER_DAY


def month_delta(ns: int, months: int) -> int:
    """How far ``add_months`` moves any instant of the month containing ``ns`` (constant per month).

    Go's AddDate keeps the day number and lets an overflow roll into the next month, so within one
    calendar month it is a plain shift by (first of target month - first of this month).
    """
    y, m, _d, _r = split_ns(ns)
    m0 = m - 1 + months
    ty, tm = y + m0 // 12, m0 % 12 + 1
    return (days_from_civil(ty, tm, 1) - days_from_civil(y, m, 1)) * NS_PER_DAY


def add_months(ns: int, months: int) -> int:
    """Go's ``t.AddDate(0, months, 0)`` in UTC (Jan 31 + 1 month = Mar 3 or Mar 2)."""
    return ns + month_delta(ns, months)


@lru_cache(maxsize=256)
def month_delta_bounds(months: int) -> tuple[int, int]:
    """Smallest and largest ``month_delta`` for this many months over a 400-year cycle (ns)."""
    lo = hi = None
    for i in range(4800):
        y, m = 2000 + i // 12, i % 12 + 1
        m0 = m - 1 + months
        ty, tm = y + m0 // 12, m0 % 12 + 1
        delta = days_from_civil(ty, tm, 1) - days_from_civil(y, m, 1)
        lo = delta if lo is None or delta < lo else lo
        hi = delta if hi is None or delta > hi else hi
    assert lo is not None and hi is not None
    return lo * NS_PER_DAY, hi * NS_PER_DAY


def next_boundary(ns: int, unit: str) -> int:
    """The next instant after ``ns`` where a calendar field of ``unit`` (hour/day/month/year) changes."""
    if unit == "hour":
        return (ns // NS_PER_HOUR + 1) * NS_PER_HOUR
    if unit == "day":
        return (ns // NS_PER_DAY + 1) * NS_PER_DAY
    y, m, _d, _r = split_ns(ns)
    if unit == "month":
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return days_from_civil(y, m, 1) * NS_PER_DAY
    return days_from_civil(y + 1, 1, 1) * NS_PER_DAY


def weekday(ns: int) -> int:
    """Go's Weekday: Sunday = 0."""
    return (ns // NS_PER_DAY + 4) % 7


# -- date math ------------------------------------------------------------------------------------

_DATEMATH = re.compile(r"^now([+-]?\d+)([smhdwMy])$")
_UNIT_NS = {"s": NS_PER_S, "m": NS_PER_MIN, "h": NS_PER_HOUR, "d": NS_PER_DAY, "w": 7 * NS_PER_DAY}
_INT64 = 1 << 63
_CACHE_MAX = 200_000


class DateMathError(ValueError):
    """A string that starts like date math (``now…``) but is not valid date math."""


def parse_datemath(text: str) -> tuple[int, int] | None:
    """``(fixed_ns, months)`` for ``"now-7d"``, ``"now+1M"``…; None if the text is not date math.

    The rules are qlbridge's (``value.StringToTimeAnchor`` and lytics/datemath): date math is text
    longer than three characters whose first three are ``now`` in any case, then a whole number
    (sign optional) and one unit of ``s m h d w M y``. ``"now"`` alone is text to qlbridge, and so
    it is here. Anything else starting with ``now`` + a sign or a digit, and any ``NOW…`` spelling,
    can never be a date there (every comparison with it is "not ok"), so it raises DateMathError:
    the mistake is reported at compile time instead of silently never matching.
    """
    if len(text) <= 3 or text[:3].lower() != "now":
        return None
    m = _DATEMATH.match(text)
    if m is None or abs(int(m.group(1))) >= _INT64:
        rest = text[3:]
        if text[:3] != "now" and _DATEMATH.match("now" + rest):
            raise DateMathError(f"{text!r} is not valid date math: write now in lower case")
        if rest[:1] in ("+", "-") or rest[:1].isdigit():
            raise DateMathError(
                f"{text!r} is not valid date math: use now±N followed by one of s m h d w M y"
            )
        return None
    n, unit = int(m.group(1)), m.group(2)
    if unit == "M":
        return 0, n
    if unit == "y":
        return 0, 12 * n
    return n * _UNIT_NS[unit], 0


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})\Z"
)
_RFC_CACHE: dict[str, int | None] = {}


def rfc3339_ns(text: str) -> int | None:
    """ns of a string Go's ``time.Parse(time.RFC3339Nano, …)`` accepts, else None. Cached.

    A profile field holding such a string is a date (a Lytics date field), the way the qlbridge
    oracle hands RFC 3339 strings to qlbridge as ``time.Time``.
    """
    try:
        return _RFC_CACHE[text]
    except KeyError:
        pass
    value: int | None = None
    m = _RFC3339.match(text)
    if m is not None:
        y, mo, d, h, mi, sec = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
        zone = m.group(8)
        zh = int(zone[1:3]) if zone != "Z" else 0
        zm = int(zone[4:6]) if zone != "Z" else 0
        valid = 1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo) and zh < 24 and zm < 60
        if valid and h < 24 and mi < 60 and sec < 60:
            ns = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec
            ns *= NS_PER_S
            frac = m.group(7)
            if frac:
                ns += int(frac[:9].ljust(9, "0"))
            if zone != "Z":
                off = (zh * 60 + zm) * 60 * NS_PER_S
                ns += -off if zone[0] == "+" else off
            value = ns
    if len(_RFC_CACHE) >= _CACHE_MAX:
        _RFC_CACHE.clear()
    _RFC_CACHE[text] = value
    return value


# -- lenient parsing -------------------------------------------------------------------------------

_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for name in names
}

_TIME = r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,:](\d{1,9}))?)?"
_AMPM = r"(?:\s*([AaPp][Mm]))?"
_ZONE = r"(?:\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))?(?:\s+(?:[A-Z]{3,5}|\([^)]*\)))?"

_ISO = re.compile(
    r"^(\d{4})-(\d{1,2})(?:-(\d{1,2})(?:(?:[Tt]|\s+)" + _TIME + r")?)?" + _AMPM + _ZONE + r"$"
)
_YMD = re.compile(
    r"^(\d{4})[/.:](\d{1,2})[/.:](\d{1,2})(?:\s+" + _TIME + r")?" + _AMPM + _ZONE + r"$"
)
_MDY = re.compile(
    r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})(?:\s+" + _TIME + r")?" + _AMPM + _ZONE + r"$"
)
_MON_D_Y = re.compile(
    r"^(?:[A-Za-z]+,?\s+)?([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})"
    r"(?:,?\s+(?:at\s+)?" + _TIME + r")?" + _AMPM + _ZONE + r"$"
)
_D_MON_Y = re.compile(
    r"^(?:[A-Za-z]+,?\s+)?(\d{1,2})[\s\-]+([A-Za-z]{3,9})\.?,?[\s\-]+(\d{4}|\d{2})"
    r"(?:,?\s+" + _TIME + r")?" + _AMPM + _ZONE + r"$"
)
_ANSIC = re.compile(
    r"^[A-Za-z]{3},?\s+([A-Za-z]{3})\s+(\d{1,2})\s+" + _TIME + _ZONE + r"\s+(\d{4})$"
)
_DIGITS = re.compile(r"^\d+$")
_YEAR_DOT_MONTH = re.compile(r"^(\d{4})\.(\d{1,2})$")  # dateparse: "2014.05"
_MONTH_DOT_DAY = re.compile(r"^(\d{1,2})\.(\d{1,2})$")  # dateparse: "3.31", in year 0


def _year2(y: int) -> int:
    """Go's two-digit year rule: 69-99 are 19xx, 00-68 are 20xx."""
    return y + (1900 if y >= 69 else 2000)


def _build(y: int, mo: int, d: int, parts: tuple[str | None, ...] = ()) -> int | None:
    """ns from date parts; ``parts`` = (hour, minute, second, fraction, am/pm, zone) as matched."""
    hh, mi, ss, frac, ampm, zone = (*parts, None, None, None, None, None, None)[:6]
    if not (1 <= mo <= 12) or not (1 <= d <= days_in_month(y, mo)):
        return None
    h = int(hh) if hh else 0
    minute = int(mi) if mi else 0
    sec = int(ss) if ss else 0
    if ampm:
        if not (1 <= h <= 12):
            return None
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    if h > 23 or minute > 59 or sec > 60:
        return None
    sec = min(sec, 59)
    ns = ((days_from_civil(y, mo, d) * 24 + h) * 60 + minute) * 60 * NS_PER_S + sec * NS_PER_S
    if frac:
        ns += int(frac.ljust(9, "0")[:9])
    if zone and zone not in ("Z", "z", "UTC", "GMT"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) if len(digits) >= 4 else 0) * 60
        ns -= sign * offset * NS_PER_S
    return ns


def _digits(text: str) -> int | None:
    """dateparse's rule for all-digit strings, by length."""
    n = len(text)
    if n == 19:
        return int(text)
    if n == 16:
        return int(text) * 1000
    if n == 13:
        return int(text) * 1_000_000
    if n == 10:
        return int(text) * NS_PER_S
    if n == 14:
        return _build(
            int(text[:4]), int(text[4:6]), int(text[6:8]), (text[8:10], text[10:12], text[12:14])
        )
    if n == 8:
        return _build(int(text[:4]), int(text[4:6]), int(text[6:8]))
    if n == 4:
        return _build(int(text), 1, 1)
    return None


def _year(text: str) -> int:
    y = int(text)
    return _year2(y) if len(text) == 2 else y


def _month(name: str) -> int:
    return _MONTHS.get(name.lower(), 0)


def _parse(text: str) -> int | None:
    s = text.strip()
    if not s or len(s) > 64:
        return None
    c = s[0]
    if c.isdigit():
        if _DIGITS.match(s):
            return _digits(s)
        m = _ISO.match(s)
        if m:
            return _build(int(m[1]), int(m[2]), int(m[3] or 1), m.group(4, 5, 6, 7, 8, 9))
        m = _YMD.match(s)
        if m:
            return _build(int(m[1]), int(m[2]), int(m[3]), m.group(4, 5, 6, 7, 8, 9))
        m = _MDY.match(s)
        if m:
            return _build(_year(m[3]), int(m[1]), int(m[2]), m.group(4, 5, 6, 7, 8, 9))
        m = _YEAR_DOT_MONTH.match(s)
        if m:
            return _build(int(m[1]), int(m[2]), 1)
        m = _MONTH_DOT_DAY.match(s)
        if m:
            return _build(0, int(m[1]), int(m[2]))
        m = _D_MON_Y.match(s)
        if m:
            return _build(_year(m[3]), _month(m[2]), int(m[1]), m.group(4, 5, 6, 7, 8, 9))
        return None
    if c.isalpha():
        m = _MON_D_Y.match(s)
        if m:
            return _build(int(m[3]), _month(m[1]), int(m[2]), m.group(4, 5, 6, 7, 8, 9))
        m = _D_MON_Y.match(s)
        if m:
            return _build(_year(m[3]), _month(m[2]), int(m[1]), m.group(4, 5, 6, 7, 8, 9))
        m = _ANSIC.match(s)
        if m:
            return _build(int(m[8]), _month(m[1]), int(m[2]), (*m.group(3, 4, 5, 6), None, m[7]))
    return None


_CACHE: dict[str, int | None] = {}


def parse_date(text: str) -> int | None:
    """ns of a date string in one of the accepted forms, or None. Cached (field values repeat)."""
    try:
        return _CACHE[text]
    except KeyError:
        pass
    value = _parse(text)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[text] = value
    return value


def number_to_date(n: int | float) -> int | None:
    """qlbridge reads a number as a date by its digits (epoch s/ms/µs/ns, yyyymmdd…), 1800-2120 only."""
    if isinstance(n, float):
        if not n.is_integer():
            return None
        n = int(n)
    if n < 0:
        return None
    ns = _digits(str(n))
    if ns is None:
        return None
    year = civil_from_days(ns // NS_PER_DAY)[0]
    return ns if 1800 <= year <= 2120 else None
