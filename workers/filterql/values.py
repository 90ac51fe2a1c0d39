"""The value rules of FilterQL: coercion, comparison, membership, pattern matching.

One module holds every rule so the compiled evaluator, its fast paths and the reference walker all
answer the same way. ``None`` stands for "missing" everywhere: an absent field, a JSON null, a
function that could not compute, and the unknown truth value of a non-boolean phrase.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from workers.filterql.dates import number_to_date, parse_date
from workers.timefmt import NS_PER_MS, NS_PER_S

EQ, NE, LT, LE, GT, GE = range(6)
OP_NAMES = {"==": EQ, "=": EQ, "!=": NE, "<>": NE, "<": LT, "<=": LE, ">": GT, ">=": GE}
SWAPPED = {EQ: EQ, NE: NE, LT: GT, LE: GE, GT: LT, GE: LE}


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
            # ParseFloat fails there (golden: tests/test_filterql_cases.py); Python's int() would
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
    if c is Time:
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
    """qlbridge's ValueToString: scalars as text, a list by its first element, maps not at all."""
    c = v.__class__
    if c is str:
        return v  # type: ignore[no-any-return]
    if v is True:
        return "true"
    if v is False:
        return "false"
    if c is int:
        return str(v)
    if c is float:
        return go_float(v)
    if c is Time:
        return str(v.ns // NS_PER_MS)
    if c is list:
        for e in v:
            return to_text(e) if e is not None else None
        return None
    return None


def truth(v: Any) -> bool | None:
    """A value read as a phrase: booleans are themselves, anything else is unknown (None)."""
    if v is True or v is False:
        return v
    return None


# -- comparison ------------------------------------------------------------------------------------


def _str_equal(a: str, b: str) -> bool:
    """Two unequal texts are still equal as numbers ("5" == "5.0") or as dates (same second)."""
    x, y = str_to_number(a), str_to_number(b)
    if x is not None and y is not None:
        return bool(x == y)
    dx = parse_date(a)
    if dx is None:
        return False
    dy = parse_date(b)
    return dy is not None and dx // NS_PER_S == dy // NS_PER_S


def compare(op: int, a: Any, b: Any) -> bool:
    """``a op b`` for present values; ``!=`` is always the negation of ``==``.

    Order of rules: lists (any element), maps (only ==/!=), dates (if either side is a Time),
    numbers (if either side is a number), booleans, then two strings (text, else numbers, else dates).
    """
    ca, cb = a.__class__, b.__class__
    if ca is list:
        if op == NE:
            return not any(compare(EQ, e, b) for e in a if e is not None)
        return any(compare(op, e, b) for e in a if e is not None)
    if cb is list:
        if op == NE:
            return not any(compare(EQ, a, e) for e in b if e is not None)
        return any(compare(op, a, e) for e in b if e is not None)
    if ca is dict or cb is dict:
        if op == EQ:
            return bool(a == b)
        if op == NE:
            return bool(a != b)
        return False
    if ca is Time or cb is Time:
        x, y = to_time(a), to_time(b)
        if x is None or y is None:
            return op == NE
        return _cmp(op, x // NS_PER_S, y // NS_PER_S)
    if ca is int or ca is float or cb is int or cb is float:
        n, m = to_number(a), to_number(b)
        if n is None or m is None:
            # A number against a date string: read the number as a date (epoch ms…), as qlbridge
            # does for a date field.
            if ca is str or cb is str:
                x, y = to_time(a), to_time(b)
                if x is not None and y is not None:
                    return _cmp(op, x // NS_PER_S, y // NS_PER_S)
            return op == NE
        return _cmp(op, n, m)
    if ca is bool or cb is bool:
        p, q = to_bool(a), to_bool(b)
        if p is None or q is None:
            return op == NE
        if op == EQ:
            return p == q
        if op == NE:
            return p != q
        return False
    if ca is str and cb is str:
        if op == EQ:
            return a == b or _str_equal(a, b)
        if op == NE:
            return not (a == b or _str_equal(a, b))
        n, m = str_to_number(a), str_to_number(b)
        if n is not None and m is not None:
            return _cmp(op, n, m)
        x, y = parse_date(a), parse_date(b)
        if x is not None and y is not None:
            return _cmp(op, x // NS_PER_S, y // NS_PER_S)
        return False
    return op == NE


def compare_missing(op: int, a: Any, b: Any) -> bool:
    """``compare`` that first applies the missing-value rules.

    Either side missing: ``!=`` is true (unless both are missing), everything else false.
    """
    if a is None or b is None:
        return op == NE and (a is not None or b is not None)
    return compare(op, a, b)


def member(a: Any, rhs: Any) -> bool:
    """``a IN rhs`` / ``a INTERSECTS rhs``: a list tests any element, a map tests its keys."""
    if a is None or rhs is None:
        return False
    if rhs.__class__ is dict:
        if a.__class__ is list:
            return any(to_text(e) in rhs for e in a if e is not None)
        key = to_text(a)
        return key is not None and key in rhs
    elems = rhs if rhs.__class__ is list else (rhs,)
    if a.__class__ is list:
        return any(compare(EQ, x, e) for x in a if x is not None for e in elems if e is not None)
    if a.__class__ is dict:
        return any(to_text(e) in a for e in elems if e is not None)
    return any(compare(EQ, a, e) for e in elems if e is not None)


def contains(a: Any, b: Any) -> bool:
    """``a CONTAINS b``: substring of text; for a list, any element contains it (numbers: equal)."""
    if a is None or b is None:
        return False
    cb = b.__class__
    if a.__class__ is list:
        if cb is int or cb is float:
            return any(to_number(e) == b for e in a if e is not None)
        t = to_text(b)
        if t is None:
            return False
        for e in a:
            if e is not None:
                s = to_text(e)
                if s is not None and t in s:
                    return True
        return False
    if a.__class__ is dict:
        return False
    s, t = to_text(a), to_text(b)
    return s is not None and t is not None and t in s


# -- LIKE: qlbridge's glob (mb0/glob with '/' as separator, '%' read as '*') ----------------------

_GLOB_CACHE: dict[str, re.Pattern[str] | None] = {}


def glob_regex(pattern: str) -> re.Pattern[str] | None:
    """Compile a LIKE pattern: ``*`` any run without '/', ``**`` any run, ``?`` one char, ``[a-z]``."""
    try:
        return _GLOB_CACHE[pattern]
    except KeyError:
        pass
    pat = pattern.replace("%", "*")
    out: list[str] = []
    i, n = 0, len(pat)
    ok = True
    while i < n:
        ch = pat[i]
        if ch == "*":
            j = i
            while j < n and pat[j] == "*":
                j += 1
            out.append(".*" if j - i > 1 else "[^/]*")
            i = j
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            j = i + 1
            neg = j < n and pat[j] == "^"
            if neg:
                j += 1
            k = pat.find("]", j + 1)
            if k < 0:
                ok = False
                break
            body = pat[j:k].replace("\\", "\\\\")
            out.append("[" + ("^" if neg else "") + body + "]")
            i = k + 1
        elif ch == "\\":
            if i + 1 >= n:
                ok = False
                break
            out.append(re.escape(pat[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    rx: re.Pattern[str] | None = None
    if ok:
        try:
            rx = re.compile("".join(out), re.DOTALL)
        except re.error:
            rx = None
    if len(_GLOB_CACHE) > 10_000:
        _GLOB_CACHE.clear()
    _GLOB_CACHE[pattern] = rx
    return rx


def like(a: Any, pattern: Any) -> bool:
    """``a LIKE pattern`` (whole-value match; a list matches if any element does)."""
    if a is None or pattern is None:
        return False
    p = to_text(pattern)
    if p is None:
        return False
    rx = glob_regex(p)
    if rx is None:
        return False
    if a.__class__ is list:
        for e in a:
            if e is not None:
                s = to_text(e)
                if s is not None and rx.fullmatch(s):
                    return True
        return False
    s = to_text(a)
    return s is not None and rx.fullmatch(s) is not None


# -- BETWEEN ---------------------------------------------------------------------------------------


def between(a: Any, lo: Any, hi: Any) -> bool | None:
    """``lo < a < hi``, exclusive at both ends; unknown (None) when a side is missing or odd.

    The type of ``a`` decides: an int (bounds truncated to ints, as qlbridge does), a float, a date
    (whole seconds), or a string read as a number, else as a date. A list matches if any element does.
    """
    if a is None or lo is None or hi is None:
        return None
    ca = a.__class__
    if ca is list:
        seen = False
        for e in a:
            if e is None:
                continue
            r = between(e, lo, hi)
            if r is True:
                return True
            seen = seen or r is not None
        return False if seen else None
    if ca is Time or lo.__class__ is Time or hi.__class__ is Time:
        x, y, z = to_time(a), to_time(lo), to_time(hi)
        if x is None or y is None or z is None:
            return None
        return y // NS_PER_S < x // NS_PER_S < z // NS_PER_S
    if ca is int or ca is float:
        y2, z2 = to_number(lo), to_number(hi)
        if y2 is None or z2 is None:
            return None
        if ca is int:
            y2, z2 = int(y2), int(z2)
        return bool(y2 < a < z2)
    if ca is str:
        n = str_to_number(a)
        if n is not None:
            y2, z2 = to_number(lo), to_number(hi)
            if y2 is not None and z2 is not None:
                return bool(y2 < n < z2)
        x = parse_date(a)
        if x is not None:
            y, z = to_time(lo), to_time(hi)
            if y is not None and z is not None:
                return y // NS_PER_S < x // NS_PER_S < z // NS_PER_S
    return None


# -- arithmetic ------------------------------------------------------------------------------------


def _go_int_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def arith(op: str, a: Any, b: Any) -> Any:
    """``+ - * / %`` on numbers (numeric strings coerced); anything else is missing."""
    if a is None or b is None:
        return None
    x, y = to_number(a), to_number(b)
    if x is None or y is None:
        return None
    both_int = x.__class__ is int and y.__class__ is int
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:
            return None
        return _go_int_div(int(x), int(y)) if both_int else x / y
    if y == 0:
        return None
    if both_int:
        return int(math.fmod(int(x), int(y)))
    return float(math.fmod(int(x), int(y))) if int(y) != 0 else None
