"""The value rules of FilterQL: coercion, comparison, membership, pattern matching.

One module holds every rule so the compiled evaluator, its fast paths and the reference walker all
answer the same way, and the rules are qlbridge's (``vm/vm.go``), checked against the real qlbridge
by the golden corpus in tests/filterql/golden/. ``None`` stands for "missing" or "not ok"
everywhere: an absent field, a JSON null, a function that could not compute, a comparison qlbridge
cannot make, and the unknown truth value of a non-boolean phrase.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from workers.filterql.dates import number_to_date, parse_date, rfc3339_ns, split_ns
from workers.filterql.glob import PatternTooLarge, compile_like
from workers.timefmt import NS_PER_MS, NS_PER_S

EQ, NE, LT, LE, GT, GE = range(6)
OP_NAMES = {"==": EQ, "=": EQ, "!=": NE, "<>": NE, "<": LT, "<=": LE, ">": GT, ">=": GE}


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


def _cmp(op: int, a: Any, b: Any) -> bool:
    if op == EQ:
        return bool(a == b)
    if op == NE:
        return bool(a != b)
    if op == LT:
        return bool(a < b)
    if op == LE:
        return bool(a <= b)
    if op == GT:
        return bool(a > b)
    return bool(a >= b)


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

IN, CONTAINS, LIKE = 6, 7, 8
"""Operator codes after the six comparisons (INTERSECTS is IN)."""


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


def _strings(v: list[Any]) -> bool:
    """Is a list field a qlbridge StringsValue (not empty, strings only)?"""
    if v.__class__ is not list or not v:
        return False
    return all(e.__class__ is str for e in v)


_GO_INT = re.compile(r"[+-]?\d+\Z")
_GO_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+\Z")
_GO_SPECIAL = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
               "+infinity": math.inf, "-infinity": -math.inf, "nan": math.nan, "+nan": math.nan,
               "-nan": math.nan}  # fmt: skip
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def go_parse_int(s: str) -> int | None:
    """Go's ``strconv.ParseInt(s, 10, 64)``."""
    if len(s) > 4000 or not _GO_INT.match(s):  # (Python's int() refuses past 4,300 digits)
        return None
    n = int(s)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


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


_MONEY_CHARS = str.maketrans("", "", "$,£€ ")


def str_float(s: str) -> float | None:
    """qlbridge's ``StringToFloat64``: ParseFloat, retried without ``$ , £ €`` and spaces."""
    if not s:
        return None
    f = go_parse_float(s)
    if f is None:
        f = go_parse_float(s.translate(_MONEY_CHARS))
    return f


def _str_int(s: str, depth: int = 0) -> int | None:
    """qlbridge's ``convertStringToInt64``: "0x" never parses, "4.7" truncates, money retried."""
    n: int | None
    if s.startswith("0x"):
        n = None
    elif "." in s:
        f = go_parse_float(s)
        n = _trunc(f) if f is not None and math.isfinite(f) else None
    else:
        n = go_parse_int(s)
    if n is None and depth == 0:
        return _str_int(s.translate(_MONEY_CHARS), 1)
    return n


def _trunc(f: float) -> int:
    """Go's ``int64(f)`` on amd64: truncation; NaN, infinities and out-of-range values give the
    smallest int64."""
    if not math.isfinite(f):
        return _INT64_MIN
    n = int(f)
    return n if _INT64_MIN <= n <= _INT64_MAX else _INT64_MIN


def to_int64(v: Any) -> int | None:
    """qlbridge's ``ValueToInt64`` (None where it is not ok)."""
    c = v.__class__
    if c is int:
        return v  # type: ignore[no-any-return]
    if c is float:
        return _trunc(v)
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
        n = _trunc(v) if c is float else v
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
    """qlbridge's ``ValueToTime``: a time, a date string, a number by its digits, a list's first."""
    c = v.__class__
    if c is Time or c is DateMath:
        return v.ns  # type: ignore[no-any-return]
    if c is str:
        return parse_date(v)
    if c is int or c is float:
        return number_to_date(v)
    if c is list and _strings(v):
        return parse_date(v[0])
    return None


def literal_value(v: Any) -> Any:
    """A literal as qlbridge holds it: NULL is NilValue, a whole float is an int (NumberNode)."""
    if v is None:
        return NULL
    if v.__class__ is float and v.is_integer() and -(2**63) <= v < 2**63:
        return int(v)
    return v


def resolve_path(d: Any, texts: tuple[str, ...], quoted: tuple[bool, ...], i: int) -> Any:
    """Walk maps along a path; unquoted neighbours may also form one key with dots in it."""
    if i == len(texts):
        return d
    if d.__class__ is not dict:
        return None
    if quoted[i]:
        v = d.get(texts[i])
        if v is None:
            return None
        if i + 1 < len(texts):
            return resolve_path(v, texts, quoted, i + 1)
        return field_value(v) if i == 0 else _map_item(d, v)
    j = i
    while j < len(texts) and not quoted[j]:
        j += 1
    for k in range(j, i, -1):
        key = ".".join(texts[i:k]) if k - i > 1 else texts[i]
        v = d.get(key)
        if v is not None:
            if k < len(texts):
                r = resolve_path(v, texts, quoted, k)
            else:
                r = field_value(v) if i == 0 else _map_item(d, v)
            if r is not None:
                return r
    return None


def _map_item(d: dict[str, Any], v: Any) -> Any:
    """A value read out of a map, as qlbridge's typed maps give it: an int in a map that also holds
    floats (and only numbers) is a float (map[string]float64); RFC 3339 strings are dates."""
    c = v.__class__
    if c is int:
        floats = False
        for x in d.values():
            cx = x.__class__
            if cx is float:
                floats = True
            elif cx is not int and x is not None:
                return v
        return float(v) if floats else v
    if c is str or c is list:
        return field_value(v)
    return v


def field_value(v: Any) -> Any:
    """A profile value as FilterQL sees it: an RFC 3339 string is a date (Lytics types date fields;
    the oracle hands such strings to qlbridge as ``time.Time``), in lists too."""
    c = v.__class__
    if c is str:
        ns = rfc3339_ns(v)
        return v if ns is None else Time(ns)
    if c is list:
        for e in v:
            if e.__class__ is str and rfc3339_ns(e) is not None:
                return [field_value(x) for x in v]
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
        return len(left) == len(right) and all(go_equal(x, y) for x, y in zip(left, right, strict=True))
    return False


def _like_text(text: str, pattern: str) -> bool | None:
    """qlbridge's ``LikeCompare`` (mb0/glob, in linear time: see glob.py): None where it is not ok,
    a malformed pattern reached while matching this text (or a pattern over the glob limits)."""
    try:
        return compile_like(pattern).match(text)
    except PatternTooLarge:
        return None


# -- comparison ------------------------------------------------------------------------------------


def binop(op: int, a: Any, b: Any) -> Any:
    """``a op b`` as qlbridge's ``evalBinary`` answers it: True, False or None ("not ok"); rarely
    BAD or NULL, an "ok" answer that is not a boolean (see those).

    ``op`` is one of EQ NE LT LE GT GE IN CONTAINS LIKE. The order of the operands matters, as it
    does in qlbridge (``"$12" == 12`` reads the string leniently, ``12 == "$12"`` strictly).
    """
    if a is None:
        if b is None:
            return False if op <= GE or op == LIKE else None
        return op == NE
    if b is None:
        return None if op == CONTAINS else op == NE
    ca, cb = a.__class__, b.__class__
    if ca is DateMath or cb is DateMath:
        return _datemath_op(op, a, b)
    if ca is str:
        return _str_op(op, a, b, cb)
    if ca is int:
        return _int_op(op, a, b, cb)
    if ca is float:
        return _float_op(op, a, b, cb)
    if ca is Time:
        if op > GE:
            return None
        t = value_to_time(b)
        return None if t is None else _cmp(op, a.ns // NS_PER_S, t // NS_PER_S)
    if ca is bool:
        if cb is bool:
            return (a is b) if op == EQ else (a is not b) if op == NE else None
        if b is NULL:
            return False if op == EQ else True if op == NE else None
        return None
    if ca is list or ca is Lits:
        return _list_op(op, a, b, cb)
    if ca is dict:
        return _map_op(op, a, b, cb)
    if a is NULL:
        return (b is NULL) if op == EQ else True if op == NE else None
    return None


def _int_op(op: int, a: int, b: Any, cb: type) -> Any:
    if cb is int:
        return _cmp(op, a, b) if op <= GE else NULL
    if cb is float:
        return _cmp(op, float(a), b) if op <= GE else None
    if cb is str:
        n = go_parse_int(b)
        if n is not None:
            return _cmp(op, a, n) if op <= GE else None
        f = go_parse_float(b)
        if f is not None:
            return _cmp(op, float(a), f) if op <= GE else None
        return None
    if cb is Lits or (cb is list and not _strings(b)):
        if op == IN:
            return any(to_int64(e) == a for e in b if e is not None)
        return None
    return None


def _float_op(op: int, a: float, b: Any, cb: type) -> bool | None:
    if cb is int or cb is float:
        return _cmp(op, a, float(b)) if op <= GE else None
    if cb is Lits or (cb is list and not _strings(b)):
        for e in b:
            ce = e.__class__
            if ce is str:
                if str_float(e) == a:
                    return True
            elif (ce is int or ce is float) and float(e) == a:
                return True
        return False
    if cb is str:
        f = go_parse_float(b)
        if f is not None:
            return _cmp(op, a, f) if op <= GE else None
        return None
    return None


def _str_op(op: int, a: str, b: Any, cb: type) -> Any:
    if cb is str:
        text: str = b
        if op in (EQ, IN):
            return a == text
        if op == NE:
            return a != text
        if op == CONTAINS:
            return text in a
        if op == LIKE:
            matched = _like_text(a, b)
            return BAD if matched is None else matched
        return BAD  # qlbridge's operateStrings cannot order two strings: an error value
    if cb is list or cb is Lits:
        items = _texts(b)
        if op == IN:
            return a in items
        if op == CONTAINS:
            return any(t in a for t in items)
        if op == LIKE:
            return any(_like_text(a, t) is True for t in items)
        return None
    if cb is int or cb is float:
        f = str_float(a)
        return _cmp(op, math.nan if f is None else f, float(b)) if op <= GE else None
    if cb is Time:
        t = value_to_time(a)
        return None if t is None or op > GE else _cmp(op, t // NS_PER_S, b.ns // NS_PER_S)
    if cb is bool:
        p = to_bool(a)
        if p is not None and op in (EQ, NE):
            return (p is b) if op == EQ else (p is not b)
        return False if op in (EQ, IN, CONTAINS, LIKE) else None
    if cb is dict:
        keys = map_keys_slice(b)  # a map of plain values is also the list of its keys
        if op == IN:
            return b.get(a) is not None
        if keys is None:
            return None
        if op == CONTAINS:
            return any(k in a for k in keys)
        if op == LIKE:
            return any(_like_text(a, k) is True for k in keys)
        return None
    if b is NULL:
        return (a == "") if op == EQ else (a != "") if op == NE else None
    return None


def _texts(v: list[Any]) -> list[str]:
    """Each item as text: a null in a list field is qlbridge's NilValue (""); a missing value in a
    list written in the filter is skipped (qlbridge would panic on it)."""
    if v.__class__ is Lits:
        return [go_string(e) for e in v if e is not None]
    return ["" if e is None else go_string(e) for e in v]


def _list_op(op: int, a: list[Any], b: Any, cb: type) -> bool | None:
    if _strings(a):  # StringsValue
        if op == CONTAINS:
            if cb is str:
                return any(b in e for e in a)
            if cb is bool:
                word = "true" if b else "false"
                return any(word in e for e in a)
            return None
        if op == LIKE:
            return any(_like_text(e, b) is True for e in a) if cb is str else None
        if op == IN:
            if cb is Lits or (cb is list and not _strings(b)):
                items = {go_string(x) for x in b if x is not None}
                return any(e in items for e in a)
            if cb is list:
                return any(e in b for e in a)
            return None
        return False if op == EQ else None
    # SliceValue
    if op <= GE:
        if not a:
            return False
        if a[0].__class__ is not Time:
            return None
        t = value_to_time(b)
        if t is None:
            return None
        sec = t // NS_PER_S
        for e in a:
            if e.__class__ is not Time:
                return None
            if _cmp(op, e.ns // NS_PER_S, sec):
                return True
        return False
    if op == CONTAINS:
        if cb is str:
            return any(b in t for t in _texts(a))
        if cb is int:
            return any(to_int64(e) == b for e in a if e is not None)
        return None
    if op == LIKE:
        if cb is str:
            return any(_like_text(t, b) is True for t in _texts(a))
        return None
    if op == IN:
        if cb is Lits or (cb is list and not _strings(b)):
            return any(go_equal(x, y) for x in a for y in b)
        if cb is list:
            return any(t in b for t in _texts(a))
        return None
    return None


def _map_op(op: int, a: dict[str, Any], b: Any, cb: type) -> bool | None:
    if op != IN:
        return None
    if cb is list and _strings(b):
        keys: list[str] = b
    elif cb is list or cb is Lits:
        keys = [go_string(e) for e in b if e is not None]
    elif cb is dict and (typed := map_keys_slice(b)) is not None:
        keys = typed  # a map of plain values is also the list of its keys
    else:
        return None
    return any(a.get(k) is not None for k in keys)


JSON_DATES = True
"""audiencehub's one extension of qlbridge's comparisons ("Dates in JSON" in docs/filterql.md):
against date math, a string in another accepted date form (not a number) or an epoch number is read
as a date, as a Lytics date field would be. qlbridge compares only typed dates there (the oracle
types RFC 3339 strings). The golden corpus generator turns it off to tell this difference apart."""


def json_date(v: Any) -> int | None:
    """ns of a non-RFC 3339 date value met by date math (see JSON_DATES), else None."""
    if not JSON_DATES:
        return None
    c = v.__class__
    if c is str:
        return None if str_float(v) is not None else parse_date(v)
    if c is int or c is float:
        return number_to_date(v)
    return None


def _datemath_op(op: int, a: Any, b: Any) -> Any:
    """One side is a "now-7d" literal: a time against a time, else the text qlbridge sees (but
    see JSON_DATES)."""
    left = a.__class__ is DateMath
    if left and b.__class__ is DateMath:
        return binop(op, a.text, b.text)
    dm, other = (a, b) if left else (b, a)
    c = other.__class__
    if c is list or c is Lits:
        return binop(op, dm.text, other) if left else _list_op(op, other, dm, DateMath)
    t = other.ns if c is Time else json_date(other)
    if t is not None:
        if op > GE:
            return None
        x, y = (dm.ns, t) if left else (t, dm.ns)
        return _cmp(op, x // NS_PER_S, y // NS_PER_S)
    return binop(op, dm.text, other) if left else binop(op, other, dm.text)


def infix(is_and: bool, symbol: bool, a: Any, b: Any) -> Any:
    """Infix ``a AND b`` / ``a OR b`` as qlbridge's ``evalBinary`` (``symbol``: written ``&&`` /
    ``||``). The parts are phrase answers (True, False, None = not ok, BAD, NULL) or, for a bare
    value used as a phrase, the value itself."""
    if a is None and b is None:
        return None if is_and else False
    if is_and and (a is None or b is None):
        return False
    if a is None or a is NULL:  # left not ok (OR) or NilValue
        if is_and:
            return None if symbol else False
        return b if b is True or b is False else False
    ca, cb = a.__class__, b.__class__
    if ca is bool:
        if cb is bool:
            return (a and b) if is_and else (a or b)
        if b is None or b is NULL:
            return (None if symbol else False) if is_and else a
        return None
    if ca is int or ca is float:
        if ca is float and (cb is Lits or (cb is list and not _strings(b))):
            return _float_op(EQ, a, b, cb)
        if cb is int or cb is float:
            x: float | None = float(b)
        elif cb is str:
            n = go_parse_int(b)
            x = float(n) if n is not None else go_parse_float(b)
        else:
            x = None
        if x is None:
            return None
        return _numbers_logic(is_and, symbol, float(a), x, ints=ca is int and cb is int)
    if ca is str:
        if cb is str:
            return BAD
        if cb is bool:
            return False
        if cb is int or cb is float:
            f = str_float(a)
            return _numbers_logic(is_and, symbol, math.nan if f is None else f, float(b), False)
        return None
    if ca is list or ca is Lits:
        return False
    return None


def _numbers_logic(is_and: bool, symbol: bool, x: float, y: float, ints: bool) -> Any:
    """qlbridge's operateNumbers / operateIntVals for AND and OR: non-zero is true. ``&&`` is
    not handled there: between ints an "ok" nil value, otherwise a panic (not ok)."""
    if is_and and symbol:
        return NULL if ints else None
    if is_and:
        return x != 0 and y != 0
    return x != 0 or y != 0


# -- BETWEEN ---------------------------------------------------------------------------------------


def between(a: Any, lo: Any, hi: Any) -> bool | None:
    """``lo < a < hi`` as qlbridge's ``walkTernary``: exclusive at both ends, None when not ok.

    The type of ``a`` decides: an int (bounds read as ints, truncated), a float, or a date (whole
    seconds); anything else (a list, a string, a boolean) is not ok. audiencehub also reads a
    string field in another accepted date form as a date between two dates.
    """
    if a is None or lo is None or hi is None:
        return None
    ca = a.__class__
    if ca is int:
        y, z = to_int64(lo), to_int64(hi)
        return None if y is None or z is None else y < a < z
    if ca is float:
        f, g = to_float64(lo), to_float64(hi)
        return None if f is None or g is None else f < a < g
    if ca is Time:
        x: int | None = a.ns
    elif ca is str and (lo.__class__ in _TIMES or hi.__class__ in _TIMES):
        x = json_date(a)
    else:
        return None
    y, z = value_to_time(lo), value_to_time(hi)
    if x is None or y is None or z is None:
        return None
    return y // NS_PER_S < x // NS_PER_S < z // NS_PER_S


_TIMES = (Time, DateMath)


# -- arithmetic ------------------------------------------------------------------------------------


def _go_int_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _go_float_op(op: str, x: float, y: float) -> float | None:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:  # IEEE division, as Go's float64
            if x == 0 or math.isnan(x):
                return math.nan
            return math.copysign(math.inf, x) * math.copysign(1.0, y)
        return x / y
    if math.isnan(x) or math.isnan(y):
        return math.nan
    n, m = _trunc(x), _trunc(y)
    if m == 0:
        return None  # Go panics (integer divide by zero)
    r = abs(n) % abs(m)
    return float(r if n >= 0 else -r)


def arith(op: str, a: Any, b: Any) -> Any:
    """``+ - * / %`` as qlbridge: ints stay ints (``/`` truncates), a number and a numeric string
    meet as numbers (the string on the left read leniently, on the right strictly); else None."""
    if a is None or b is None:
        return None
    ca, cb = a.__class__, b.__class__
    if ca is int:
        if cb is int:
            return _int_arith(op, a, b)
        if cb is str:
            n = go_parse_int(b)
            if n is not None:
                return _int_arith(op, a, n)
            f = go_parse_float(b)
            return None if f is None else _go_float_op(op, float(a), f)
        if cb is float:
            return _go_float_op(op, float(a), b)
        return None
    if ca is float:
        if cb is int or cb is float:
            return _go_float_op(op, a, float(b))
        if cb is Lits or (cb is list and not _strings(b)):
            return _float_op(EQ, a, b, cb)  # qlbridge: any operator is membership here
        if cb is str:
            n = go_parse_int(b)
            f = float(n) if n is not None else go_parse_float(b)
            return None if f is None else _go_float_op(op, a, f)
        return None
    if ca is str and (cb is int or cb is float):
        x = str_float(a)
        return _go_float_op(op, math.nan if x is None else x, float(b))
    if ca is str and cb is str:
        return BAD  # qlbridge's operateStrings has no arithmetic: an error value
    return None


def _int_arith(op: str, a: int, b: int) -> Any:
    """Go int64 arithmetic: results wrap around, ``/`` truncates, ``% 0`` panics (not ok)."""
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif b == 0:
        return NULL if op == "/" else None  # Go: an error qlbridge drops (nil, ok) / a panic
    elif op == "/":
        r = _go_int_div(a, b)
    else:
        r = abs(a) % abs(b)
        r = r if a >= 0 else -r
    return (r - _INT64_MIN) % (1 << 64) + _INT64_MIN
