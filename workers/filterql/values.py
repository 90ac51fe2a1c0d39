"""FilterQL's values: qlbridge's value types in Python, and how one type reads as another.

The compiled evaluator, its fast paths, the functions and the reference walker all convert with
these, so they answer alike; the conversions are qlbridge's (``value/coerce.go``), checked against
the real qlbridge by the golden corpus in tests/filterql/golden/. ``None`` stands for "missing" or
"not ok" everywhere: an absent field, a JSON null, a function that could not compute, a comparison
qlbridge cannot make, and the unknown truth value of a non-boolean phrase. The operators that
combine values are in operators.py.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from workers.filterql.dates import number_to_date, parse_date, rfc3339_ns, split_ns
from workers.timefmt import NS_PER_MS, NS_PER_S


class Time:
    """A point in time (ns since the epoch): ``_created``, ``now()``, date math, ``todate()``.

    Kept distinct from numbers so a comparison knows to read the other side as a date.
    """

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Time) and other.ns == self.ns

    def __hash__(self) -> int:
        return hash(("Time", self.ns))

    def __repr__(self) -> str:
        return f"Time({self.ns})"


# -- coercions -------------------------------------------------------------------------------------

_NUM = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_MONEY = str.maketrans("", "", "$,£€ ")
_NUM_CACHE: dict[str, int | float | None] = {}


def str_to_number(s: str) -> int | float | None:
    """A numeric string as a number (qlbridge also strips ``$ , £ €`` and spaces), else None."""
    try:
        return _NUM_CACHE[s]
    except KeyError:
        pass
    v: int | float | None = None
    for cand in (s, s.translate(_MONEY)):
        if _NUM.match(cand):
            integral = not ("." in cand or "e" in cand or "E" in cand)
            # Out of float64's range (5,000 digits, 1e400) is not a number to qlbridge, whose
            # ParseFloat fails there (golden: tests/filterql/test_cases.py); Python's int() would
            # even refuse past 4,300 digits and fail the whole evaluation.
            f = float(cand)
            if not math.isfinite(f):
                break
            v = int(cand) if integral else f
            break
    if len(_NUM_CACHE) > 100_000:
        _NUM_CACHE.clear()
    _NUM_CACHE[s] = v
    return v


def to_number(v: Any) -> int | float | None:
    """Number for numeric comparison: ints, floats and numeric strings (never bools)."""
    c = v.__class__
    if c is int or c is float:
        return v  # type: ignore[no-any-return]
    if c is str:
        return str_to_number(v)
    return None


def to_time(v: Any) -> int | None:
    """ns for date comparison: Time values, date strings (cached) and epoch-like numbers."""
    c = v.__class__
    if c is Time or c is DateMath:
        return v.ns  # type: ignore[no-any-return]
    if c is str:
        return parse_date(v)
    if c is int or c is float:
        return number_to_date(v)
    return None


_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def to_bool(v: Any) -> bool | None:
    """Go's ParseBool on strings; bools as they are."""
    if v is True or v is False:
        return v
    if v.__class__ is str:
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    return None


def go_float(f: float) -> str:
    """Format a float like Go's ``%v`` (shortest digits, exponent form below 1e-4 or from 1e6)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    d = Decimal(repr(f))
    sign = "-" if d < 0 else ""
    d = abs(d)
    exp = d.adjusted()
    digits = "".join(str(x) for x in d.as_tuple().digits).rstrip("0") or "0"
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    text = format(d.normalize(), "f")
    return sign + text


def to_text(v: Any) -> str | None:
    """qlbridge's ``ValueToString``: scalars as text (a date as Go prints a time.Time), a list by
    its first element (a null element is ""), maps and missing values not at all (None)."""
    c = v.__class__
    if c is str:
        return v  # type: ignore[no-any-return]
    if v is True:
        return "true"
    if v is False:
        return "false"
    if c is int:
        return "" if v == -(1 << 31) else str(v)
    if c is float:
        return None if math.isnan(v) else go_float(v)
    if c is Time or c is DateMath:
        return go_time_text(v.ns)
    if c is list or c is Lits:
        for e in v:
            return "" if e is None or e is NULL else go_string(e)
        return None
    if c is dict:
        keys = map_keys_slice(v)
        return keys[0] if keys else None
    return None


def map_keys_slice(v: dict[str, Any]) -> list[str] | None:
    """The keys of a map qlbridge also treats as a list of them (value.Slice): a map of only
    strings, only numbers or only booleans (MapStringValue, MapIntValue, MapNumberValue,
    MapBoolValue); None for a map of dates or of mixed values (MapTimeValue, MapValue).

    Go iterates a map in random order, so where qlbridge reads "the first key" of such a map with
    several keys its answer is random; here it is the first key written.
    """
    kinds: set[type] = set()
    for x in v.values():
        if x is not None:
            c = x.__class__
            if c is str and rfc3339_ns(x) is not None:
                return None
            kinds.add(c)
    if not kinds or not (kinds <= {int, float} or kinds == {str} or kinds == {bool}):
        return None
    return [k for k, x in v.items() if x is not None]


def go_time_text(ns: int) -> str:
    """Go's ``time.Time.String()`` of a UTC instant: ``2026-03-10 12:00:00.5 +0000 UTC``."""
    sec, frac = divmod(ns, NS_PER_S)
    y, mo, d, rem = split_ns(sec * NS_PER_S)
    rem //= NS_PER_S
    text = f"{y:04d}-{mo:02d}-{d:02d} {rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return text + " +0000 UTC"


def truth(v: Any) -> Any:
    """A value read as a phrase: booleans are themselves, a missing value None, any other value BAD
    (present, but not a boolean)."""
    if v is True or v is False or v is None:
        return v
    return BAD


def tri(v: Any) -> bool | None:
    """A phrase's value as True, False or None (BAD and NULL are neither true nor false)."""
    if v is True or v is False:
        return v
    return None


# -- qlbridge's value types in Python --------------------------------------------------------------
#
# The oracle tests answer with lytics/qlbridge itself, so the rules below follow ``vm/vm.go``
# (``evalBinary``, ``walkTernary``) type by type. How Python values map onto qlbridge's types:
#
#   None            a missing field, or anything qlbridge calls "not ok"
#   NULL            the literal NULL (qlbridge's NilValue)
#   str int float bool          StringValue IntValue NumberValue BoolValue
#   Time            TimeValue: an RFC 3339 field (see ``field_value``), now(), todate(), _created
#   DateMath        a "now-7d" literal: a StringValue to qlbridge, read as a date against a time
#   list            a list field: StringsValue when it holds only strings (and is not empty),
#                   else SliceValue
#   Lits            a list written in the filter, ("a", 1): always a SliceValue
#   dict            a map field (value.Map)
#
# Where qlbridge answers with a value that is not a boolean, or panics (CONTAINS on two numbers),
# the phrase is "not ok" here: None.


class DateMath(Time):
    """A date math literal's instant at the evaluation's now, keeping its text (qlbridge sees text)."""

    __slots__ = ("text",)

    def __init__(self, ns: int, text: str) -> None:
        self.ns = ns
        self.text = text

    def __repr__(self) -> str:
        return f"DateMath({self.text!r}, {self.ns})"


class _Null:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL"


NULL: Any = _Null()
"""The literal NULL (qlbridge's NilValue): present, but nothing. Also what qlbridge computes for
an int divided by zero or IN between two ints: a nil value that is "ok"."""


class _Bad:
    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD"


BAD: Any = _Bad()
"""A phrase that is "ok" to qlbridge but not a boolean (ordering two strings gives an error value).
Like None it is neither true nor false; only infix ``a OR b`` / ``a AND b`` tell them apart."""


class Lits(list[Any]):
    """A list written in the filter (``IN ("a", 1)``, ``["a"]``): a qlbridge SliceValue."""

    __slots__ = ()


def is_strings(v: list[Any]) -> bool:
    """Is a list field a qlbridge StringsValue (not empty, strings only)?"""
    if v.__class__ is not list or not v:
        return False
    return all(e.__class__ is str for e in v)


_GO_INT = re.compile(r"[+-]?\d+\Z")
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_GO_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+\Z"
)
_GO_SPECIAL = {
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
    "nan": math.nan,
    "+nan": math.nan,
    "-nan": math.nan,
}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def go_parse_int(s: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 10, 64)``."""
    if len(s) > 4000 or not _GO_INT.match(s):  # (Python's int() refuses past 4,300 digits)
        return None
    n = int(s)
    return n if INT64_MIN <= n <= INT64_MAX else None


def go_parse_float(s: str) -> float | None:
    """Go's ``strconv.ParseFloat(s, 64)`` (decimal, hex with p exponent, inf, nan)."""
    if _GO_FLOAT.match(s):
        f = float(s)
        return None if math.isinf(f) else f
    if _GO_HEX_FLOAT.match(s):
        try:
            return float.fromhex(s)
        except (ValueError, OverflowError):
            return None
    return _GO_SPECIAL.get(s.lower())


def str_float(s: str) -> float | None:
    """qlbridge's ``StringToFloat64``: ParseFloat, retried without ``$ , £ €`` and spaces."""
    if not s:
        return None
    f = go_parse_float(s)
    if f is None:
        f = go_parse_float(s.translate(_MONEY))
    return f


def _str_int(s: str, depth: int = 0) -> int | None:
    """qlbridge's ``convertStringToInt64``: "0x" never parses, "4.7" truncates, money retried."""
    n: int | None
    if s.startswith("0x"):
        n = None
    elif "." in s:
        f = go_parse_float(s)
        n = go_int64(f) if f is not None and math.isfinite(f) else None
    else:
        n = go_parse_int(s)
    if n is None and depth == 0:
        return _str_int(s.translate(_MONEY), 1)
    return n


def go_int64(f: float) -> int:
    """Go's ``int64(f)`` on amd64: truncation; NaN, infinities and out-of-range values give the
    smallest int64."""
    if not math.isfinite(f):
        return INT64_MIN
    n = int(f)
    return n if INT64_MIN <= n <= INT64_MAX else INT64_MIN


def to_int64(v: Any) -> int | None:
    """qlbridge's ``ValueToInt64`` (None where it is not ok)."""
    c = v.__class__
    if c is int:
        return v  # type: ignore[no-any-return]
    if c is float:
        return go_int64(v)
    if c is str:
        return _str_int(v)
    if c is Time:
        return v.ns // NS_PER_MS  # type: ignore[no-any-return]
    if (c is list or c is Lits) and v:
        return to_int64(v[0]) if v[0] is not None else None
    if c is dict:
        keys = map_keys_slice(v)
        return _str_int(keys[0]) if keys else None
    return None


def to_float64(v: Any) -> float | None:
    """qlbridge's ``ValueToFloat64`` (None where it is not ok)."""
    c = v.__class__
    if c is int or c is float:
        return float(v)
    if c is str:
        return str_float(v)
    if v is True:
        return 1.0
    if v is False:
        return 0.0
    if c is Time:
        return float(v.ns // NS_PER_MS)
    return None


def go_bool(v: Any) -> bool | None:
    """qlbridge's ``ValueToBool``: booleans, Go's ParseBool strings, the numbers 0 and 1."""
    c = v.__class__
    if c is bool:
        return v  # type: ignore[no-any-return]
    if c is str:
        return to_bool(v)
    if c is int or c is float:
        n = go_int64(v) if c is float else v
        return True if n == 1 else False if n == 0 else None
    return None


def go_string(v: Any) -> str:
    """qlbridge's ``Value.ToString()`` (a list joins its items with commas; a date is epoch ms)."""
    c = v.__class__
    if c is str:
        return v  # type: ignore[no-any-return]
    if c is bool:
        return "true" if v else "false"
    if c is int:
        return "" if v == -(1 << 31) else str(v)
    if c is float:
        return go_float(v)
    if c is Time or c is DateMath:
        return str(v.ns // NS_PER_MS)
    if c is list or c is Lits:
        return ",".join(go_string(e) for e in v if e is not None)
    if c is dict:
        items = sorted((k, x) for k, x in v.items() if x is not None)
        kinds = {x.__class__ for _k, x in items}
        typed = len(kinds) == 1 or kinds == {int, float}
        if typed and (str in kinds or bool in kinds or int in kinds or float in kinds):
            return "map[" + " ".join(f"{k}:{go_string(x)}" for k, x in items) + "]"
        return "map[" + " ".join(f"{k}:{{{go_string(x)}}}" for k, x in items) + "]"
    return ""


def value_to_time(v: Any) -> int | None:
    """qlbridge's ``ValueToTime``: a time, a date string, a number by its digits, a list's first.

    ``to_time`` and a list case, written out: BETWEEN and date comparisons call it for every
    candidate instant of a next-change search, where one more call costs 4% (bench/filterql.py).
    """
    c = v.__class__
    if c is Time or c is DateMath:
        return v.ns  # type: ignore[no-any-return]
    if c is str:
        return parse_date(v)
    if c is int or c is float:
        return number_to_date(v)
    if c is list and is_strings(v):
        return parse_date(v[0])
    return None


def literal_value(v: Any) -> Any:
    """A literal as qlbridge holds it: NULL is NilValue, a whole float is an int (NumberNode)."""
    if v is None:
        return NULL
    if v.__class__ is float and v.is_integer() and -(2**63) <= v < 2**63:
        return int(v)
    return v


def go_equal(left: Any, right: Any) -> bool:
    """qlbridge's ``value.Equal`` (used by IN between two lists)."""
    if right is None or right is NULL:
        return left is None or left is NULL
    c = left.__class__
    if left is None or left is NULL:
        return False
    if c is str:
        return left == go_string(right)  # type: ignore[no-any-return]
    if c is int:
        return left == (to_int64(right) or 0)  # type: ignore[no-any-return]
    if c is float:
        f = to_float64(right)
        return f is not None and f == left
    if c is bool:
        return left is bool(go_bool(right))
    if c is Time:
        return left.ns == value_to_time(right)  # type: ignore[no-any-return]
    if (c is list or c is Lits) and right.__class__ in (list, Lits):
        return len(left) == len(right) and all(
            go_equal(x, y) for x, y in zip(left, right, strict=True)
        )
    return False
