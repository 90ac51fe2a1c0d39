"""``todate(layout, value)``: Go's ``time.Parse``, which qlbridge calls, read left to right.

Go reads a layout as literal text between reference elements (``2006``, ``Jan``, ``15``, ``.000``,
``Z07:00``…) and consumes the value element by element, never going back: a month name is looked
up, a number takes one or two digits, a zone takes its fixed shape. So does this port, which makes
the work linear in the value and the layout (the regular expression we built from a layout before
backtracked: a layout of repeated ``Monday`` never returned). Local time is UTC, as on our servers
and the reference's: a zone name other than UTC keeps the clock reading, a numeric offset moves it.
"""

from __future__ import annotations

from functools import lru_cache

from workers.filterql.dates import days_from_civil, days_in_month, is_leap
from workers.timefmt import NS_PER_S

# Reference elements (Go's std* constants), by name.
LONG_MONTH, MONTH, NUM_MONTH, ZERO_MONTH = "January", "Jan", "1", "01"
LONG_WEEKDAY, WEEKDAY = "Monday", "Mon"
DAY, UNDER_DAY, ZERO_DAY = "2", "_2", "02"
UNDER_YEARDAY, ZERO_YEARDAY = "__2", "002"
HOUR, HOUR12, ZERO_HOUR12 = "15", "3", "03"
MINUTE, ZERO_MINUTE, SECOND, ZERO_SECOND = "4", "04", "5", "05"
LONG_YEAR, YEAR = "2006", "06"
PM_UPPER, PM_LOWER = "PM", "pm"
TZ = "MST"
ISO_TZ, ISO_SECONDS_TZ, ISO_SHORT_TZ, ISO_COLON_TZ, ISO_COLON_SECONDS_TZ = (
    "Z0700",
    "Z070000",
    "Z07",
    "Z07:00",
    "Z07:00:00",
)
NUM_TZ, NUM_SECONDS_TZ, NUM_SHORT_TZ, NUM_COLON_TZ, NUM_COLON_SECONDS_TZ = (
    "-0700",
    "-070000",
    "-07",
    "-07:00",
    "-07:00:00",
)
FRAC0, FRAC9 = ".0", ".9"

_ZERO_X = {"1": ZERO_MONTH, "2": ZERO_DAY, "3": ZERO_HOUR12, "4": ZERO_MINUTE, "5": ZERO_SECOND}
_ZERO_X["6"] = YEAR
_SHORT_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LONG_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_SHORT_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

Element = tuple[str, str, int]
"""(literal text before it, reference element, digits of a fractional second)."""


def _lower_next(layout: str, i: int) -> bool:
    return i < len(layout) and "a" <= layout[i] <= "z"


def _element_at(layout: str, i: int) -> tuple[str, int, int, int] | None:
    """Go's nextStdChunk at one position: (element, its start, its end, fraction digits)."""
    c = layout[i]
    rest = layout[i:]
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return LONG_MONTH, i, i + 7, 0
        if not _lower_next(layout, i + 3):
            return MONTH, i, i + 3, 0
    elif c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return LONG_WEEKDAY, i, i + 6, 0
            if not _lower_next(layout, i + 3):
                return WEEKDAY, i, i + 3, 0
        if rest.startswith("MST"):
            return TZ, i, i + 3, 0
    elif c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            return _ZERO_X[rest[1]], i, i + 2, 0
        if rest.startswith("002"):
            return ZERO_YEARDAY, i, i + 3, 0
    elif c == "1":
        if rest.startswith("15"):
            return HOUR, i, i + 2, 0
        return NUM_MONTH, i, i + 1, 0
    elif c == "2":
        if rest.startswith("2006"):
            return LONG_YEAR, i, i + 4, 0
        return DAY, i, i + 1, 0
    elif c == "_":
        if rest.startswith("_2"):
            if rest.startswith("_2006"):  # a literal '_' before the year
                return LONG_YEAR, i + 1, i + 5, 0
            return UNDER_DAY, i, i + 2, 0
        if rest.startswith("__2"):
            return UNDER_YEARDAY, i, i + 3, 0
    elif c == "3":
        return HOUR12, i, i + 1, 0
    elif c == "4":
        return MINUTE, i, i + 1, 0
    elif c == "5":
        return SECOND, i, i + 1, 0
    elif c == "P" and rest.startswith("PM"):
        return PM_UPPER, i, i + 2, 0
    elif c == "p" and rest.startswith("pm"):
        return PM_LOWER, i, i + 2, 0
    elif c == "-":
        for std in (NUM_SECONDS_TZ, NUM_COLON_SECONDS_TZ, NUM_TZ, NUM_COLON_TZ, NUM_SHORT_TZ):
            if rest.startswith(std):
                return std, i, i + len(std), 0
    elif c == "Z":
        for std in (ISO_SECONDS_TZ, ISO_COLON_SECONDS_TZ, ISO_TZ, ISO_COLON_TZ, ISO_SHORT_TZ):
            if rest.startswith(std):
                return std, i, i + len(std), 0
    elif c in ".," and len(rest) >= 2 and rest[1] in "09":
        j = i + 1
        while j < len(layout) and layout[j] == rest[1]:
            j += 1
        if not (j < len(layout) and "0" <= layout[j] <= "9"):
            return (FRAC0 if rest[1] == "0" else FRAC9), i, j, j - i - 1
    return None


@lru_cache(maxsize=256)
def elements(layout: str) -> tuple[tuple[Element, ...], str]:
    """The layout as (literal text, element) steps, and the literal text after the last one."""
    out: list[Element] = []
    start = i = 0
    while i < len(layout):
        found = _element_at(layout, i)
        if found is None:
            i += 1
            continue
        std, begin, end, digits = found
        out.append((layout[start:begin], std, digits))
        start = i = end
    return tuple(out), layout[start:]


def _skip(value: str, at: int, prefix: str) -> int:
    """Go's skip: the literal text, where a run of spaces matches any run of spaces; -1 if not."""
    i, n = 0, len(prefix)
    while i < n:
        if prefix[i] == " ":
            if at < len(value) and value[at] != " ":
                return -1
            while i < n and prefix[i] == " ":
                i += 1
            while at < len(value) and value[at] == " ":
                at += 1
            continue
        if at >= len(value) or value[at] != prefix[i]:
            return -1
        i += 1
        at += 1
    return at


def _digit(value: str, i: int) -> bool:
    return i < len(value) and "0" <= value[i] <= "9"


def _getnum(value: str, at: int, fixed: bool) -> tuple[int, int]:
    """One or two digits (exactly two when fixed): (number, next position); (-1, at) if none."""
    if not _digit(value, at):
        return -1, at
    if not _digit(value, at + 1):
        return (-1, at) if fixed else (int(value[at]), at + 1)
    return int(value[at : at + 2]), at + 2


def _lookup(table: tuple[str, ...], value: str, at: int) -> tuple[int, int]:
    """Go's lookup: the first name the value starts with, ASCII case ignored; (-1, at) if none."""
    for index, name in enumerate(table):
        got = value[at : at + len(name)]
        if len(got) == len(name) and _same_ignoring_case(got, name):
            return index, at + len(name)
    return -1, at


def _same_ignoring_case(a: str, b: str) -> bool:
    for x, y in zip(a, b, strict=True):
        if x != y and not (x.isascii() and x.isalpha() and x.lower() == y.lower()):
            return False
    return True


def _atoi(text: str) -> int | None:
    """Go's time.atoi: an optional sign, then digits only (none reads as 0)."""
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if not all("0" <= c <= "9" for c in text):
        return None
    return sign * int(text) if text else 0


def _zone_name_length(value: str, at: int) -> int:
    """Go's parseTimeZone: the length of a zone abbreviation at ``at``, or 0."""
    rest = value[at : at + 9]
    if len(rest) < 3:
        return 0
    if rest[:4] in ("ChST", "MeST"):
        return 4
    if rest.startswith("GMT"):
        return 3 + _signed_offset_length(value, at + 3) if len(value) > at + 3 else 3
    if rest[0] in "+-":
        return _signed_offset_length(value, at)
    upper = 0
    while upper < 6 and upper < len(rest) and "A" <= rest[upper] <= "Z":
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (rest[3] == "T" or rest[:4] == "WITA"):
        return 4
    if upper == 5 and rest[4] == "T":
        return 5
    return 0


def _signed_offset_length(value: str, at: int) -> int:
    """Go's parseSignedOffset: "+3", "-04"… (at most 23), its length, or 0."""
    if at >= len(value) or value[at] not in "+-":
        return 0
    end = at + 1
    while end < len(value) and "0" <= value[end] <= "9":
        end += 1
        if end - at > 20:  # Go's leadingInt overflows long before: not an offset
            return 0
    if end == at + 1 or int(value[at + 1 : end]) > 23:
        return 0
    return end - at


def _nanoseconds(value: str, at: int, count: int) -> int | None:
    """Go's parseNanoseconds over value[at:at+count] (separator first); None if malformed."""
    if value[at] not in ".,":
        return None
    digits = value[at + 1 : at + min(count, 10)]
    n = _atoi(digits)
    if n is None or n < 0:
        return None
    return n * int(10 ** (9 - len(digits)))


def _fraction(value: str, at: int) -> tuple[int, int] | None:
    """A fraction of a second at ``at`` (its "." or ","; a digit follows): its nanoseconds and
    where its digits end, or None where Go's parser refuses it."""
    end = at + 1
    while _digit(value, end):
        end += 1
    got = _nanoseconds(value, at, end - at)
    return None if got is None else (got, end)


def parse_layout(layout: str, value: str) -> int | None:
    """``time.Parse(layout, value)`` as ns since the epoch (UTC), or None where Go errs."""
    steps, tail = elements(layout)
    year, month, day, yday = 0, -1, -1, -1
    hour = minute = sec = nsec = 0
    am = pm = False
    offset = 0  # seconds east of UTC, from a numeric zone
    utc = False  # a 'Z' or 'UTC' zone: Go then ignores any numeric offset
    at = 0
    for index, (prefix, std, digits) in enumerate(steps):
        at = _skip(value, at, prefix)
        if at < 0:
            return None
        n: int
        if std == YEAR:
            got = _atoi(value[at : at + 2]) if len(value) - at >= 2 else None
            if got is None:
                return None
            year = got + (1900 if got >= 69 else 2000)
            at += 2
        elif std == LONG_YEAR:
            got = _atoi(value[at : at + 4]) if len(value) - at >= 4 and _digit(value, at) else None
            if got is None:
                return None
            year = got
            at += 4
        elif std in (MONTH, LONG_MONTH):
            n, at = _lookup(_SHORT_MONTHS if std == MONTH else _LONG_MONTHS, value, at)
            if n < 0:
                return None
            month = n + 1
        elif std in (NUM_MONTH, ZERO_MONTH):
            month, at = _getnum(value, at, std == ZERO_MONTH)
            if not 1 <= month <= 12:
                return None
        elif std in (WEEKDAY, LONG_WEEKDAY):
            n, at = _lookup(_SHORT_DAYS if std == WEEKDAY else _LONG_DAYS, value, at)
            if n < 0:
                return None
        elif std in (DAY, UNDER_DAY, ZERO_DAY):
            if std == UNDER_DAY and at < len(value) and value[at] == " ":
                at += 1
            day, at = _getnum(value, at, std == ZERO_DAY)
            if day < 0:
                return None
        elif std in (UNDER_YEARDAY, ZERO_YEARDAY):
            if std == UNDER_YEARDAY:
                for _ in range(2):
                    if at < len(value) and value[at] == " ":
                        at += 1
            end = at
            while end < at + 3 and _digit(value, end):
                end += 1
            if end == at or (std == ZERO_YEARDAY and end - at != 3):
                return None
            yday, at = int(value[at:end]), end
        elif std == HOUR:
            hour, at = _getnum(value, at, False)
            if not 0 <= hour < 24:
                return None
        elif std in (HOUR12, ZERO_HOUR12):
            hour, at = _getnum(value, at, std == ZERO_HOUR12)
            if not 0 <= hour <= 12:
                return None
        elif std in (MINUTE, ZERO_MINUTE):
            minute, at = _getnum(value, at, std == ZERO_MINUTE)
            if not 0 <= minute < 60:
                return None
        elif std in (SECOND, ZERO_SECOND):
            sec, at = _getnum(value, at, std == ZERO_SECOND)
            if not 0 <= sec < 60:
                return None
            # A fraction the layout does not name is still read, unless one comes next.
            following = steps[index + 1][1] if index + 1 < len(steps) else ""
            if (
                len(value) - at >= 2
                and value[at] in ".,"
                and _digit(value, at + 1)
                and following not in (FRAC0, FRAC9)
            ):
                fraction = _fraction(value, at)
                if fraction is None:
                    return None
                nsec, at = fraction
        elif std in (PM_UPPER, PM_LOWER):
            text = value[at : at + 2]
            if len(text) < 2:
                return None
            am_text, pm_text = ("AM", "PM") if std == PM_UPPER else ("am", "pm")
            if text == pm_text:
                pm = True
            elif text == am_text:
                am = True
            else:
                return None
            at += 2
        elif std in (ISO_TZ, ISO_SECONDS_TZ, ISO_SHORT_TZ, ISO_COLON_TZ, ISO_COLON_SECONDS_TZ) and (
            at < len(value) and value[at] == "Z"
        ):
            at += 1
            utc = True
        elif std in (
            ISO_TZ,
            ISO_SECONDS_TZ,
            ISO_SHORT_TZ,
            ISO_COLON_TZ,
            ISO_COLON_SECONDS_TZ,
            NUM_TZ,
            NUM_SECONDS_TZ,
            NUM_SHORT_TZ,
            NUM_COLON_TZ,
            NUM_COLON_SECONDS_TZ,
        ):
            got_offset = _numeric_zone(std, value, at)
            if got_offset is None:
                return None
            offset, at = got_offset
        elif std == TZ:
            if value.startswith("UTC", at):
                at += 3
                utc = True
            else:
                length = _zone_name_length(value, at)
                if length == 0:
                    return None
                at += length  # an abbreviation other than UTC keeps the clock reading
        elif std == FRAC0:
            if len(value) - at < 1 + digits:
                return None
            got = _nanoseconds(value, at, 1 + digits)
            if got is None:
                return None
            nsec, at = got, at + 1 + digits
        elif std == FRAC9 and len(value) - at >= 2 and value[at] in ".," and _digit(value, at + 1):
            fraction = _fraction(value, at)
            if fraction is None:
                return None
            nsec, at = fraction
    at = _skip(value, at, tail)
    if at < 0 or at != len(value):
        return None
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    if yday >= 0:
        got_md = _from_yearday(year, yday)
        if got_md is None:
            return None
        m, d = got_md
        if (month >= 0 and month != m) or (day >= 0 and day != d):
            return None
        month, day = m, d
    else:
        month = 1 if month < 0 else month
        day = 1 if day < 0 else day
    if not 1 <= day <= days_in_month(year, month):
        return None
    seconds = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 + sec
    if not utc:
        seconds -= offset
    return seconds * NS_PER_S + nsec


def _numeric_zone(std: str, value: str, at: int) -> tuple[int, int] | None:
    """A numeric offset in the element's shape: (seconds east of UTC, next position)."""
    rest = value[at : at + 9]
    if std in (ISO_COLON_TZ, NUM_COLON_TZ):
        if len(rest) < 6 or rest[3] != ":":
            return None
        sign, hh, mm, ss, used = rest[0], rest[1:3], rest[4:6], "00", 6
    elif std in (ISO_SHORT_TZ, NUM_SHORT_TZ):
        if len(rest) < 3:
            return None
        sign, hh, mm, ss, used = rest[0], rest[1:3], "00", "00", 3
    elif std in (ISO_COLON_SECONDS_TZ, NUM_COLON_SECONDS_TZ):
        if len(rest) < 9 or rest[3] != ":" or rest[6] != ":":
            return None
        sign, hh, mm, ss, used = rest[0], rest[1:3], rest[4:6], rest[7:9], 9
    elif std in (ISO_SECONDS_TZ, NUM_SECONDS_TZ):
        if len(rest) < 7:
            return None
        sign, hh, mm, ss, used = rest[0], rest[1:3], rest[3:5], rest[5:7], 7
    else:
        if len(rest) < 5:
            return None
        sign, hh, mm, ss, used = rest[0], rest[1:3], rest[3:5], "00", 5
    parts = [_getnum(text, 0, True)[0] for text in (hh, mm, ss)]
    if any(p < 0 for p in parts) or parts[0] > 24 or parts[1] > 60 or parts[2] > 60:
        return None
    seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if sign == "-":
        seconds = -seconds
    elif sign != "+":
        return None
    return seconds, at + used


def _from_yearday(year: int, yday: int) -> tuple[int, int] | None:
    """Go's day-of-year to (month, day), or None when out of range."""
    if is_leap(year):
        if yday == 31 + 29:
            return 2, 29
        if yday > 31 + 29:
            yday -= 1
    if not 1 <= yday <= 365:
        return None
    before = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
    month = 1
    while before[month] < yday:
        month += 1
    return month, yday - before[month - 1]
