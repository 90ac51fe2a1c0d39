"""FilterQL's operators on values: comparison, IN, CONTAINS, LIKE, BETWEEN, AND / OR, arithmetic.

The rules are qlbridge's ``vm/vm.go`` (``evalBinary``, ``walkTernary``) type by type, checked
against the real qlbridge by the golden corpus in tests/filterql/golden/. Where qlbridge answers
with a value that is not a boolean, or panics (CONTAINS on two numbers), the phrase is "not ok"
here: None. The compiled evaluator and the reference walker both call these.
"""

from __future__ import annotations

import math
from typing import Any

from workers.filterql.dates import number_to_date, parse_date
from workers.filterql.glob import PatternTooLarge, compile_like
from workers.filterql.values import (
    BAD,
    INT64_MIN,
    NULL,
    DateMath,
    Lits,
    Time,
    go_equal,
    go_int64,
    go_parse_float,
    go_parse_int,
    go_string,
    is_strings,
    map_keys_slice,
    str_float,
    to_bool,
    to_float64,
    to_int64,
    value_to_time,
)
from workers.timefmt import NS_PER_S

EQ, NE, LT, LE, GT, GE = range(6)
OP_NAMES = {"==": EQ, "=": EQ, "!=": NE, "<>": NE, "<": LT, "<=": LE, ">": GT, ">=": GE}
IN, CONTAINS, LIKE = 6, 7, 8
"""Operator codes after the six comparisons (INTERSECTS is IN)."""


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
    if cb is Lits or (cb is list and not is_strings(b)):
        if op == IN:
            return any(to_int64(e) == a for e in b if e is not None)
        return None
    return None


def _float_op(op: int, a: float, b: Any, cb: type) -> bool | None:
    if cb is int or cb is float:
        return _cmp(op, a, float(b)) if op <= GE else None
    if cb is Lits or (cb is list and not is_strings(b)):
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
    if is_strings(a):  # StringsValue
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
            if cb is Lits or (cb is list and not is_strings(b)):
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
        if cb is Lits or (cb is list and not is_strings(b)):
            return any(go_equal(x, y) for x in a for y in b)
        if cb is list:
            return any(t in b for t in _texts(a))
        return None
    return None


def _map_op(op: int, a: dict[str, Any], b: Any, cb: type) -> bool | None:
    if op != IN:
        return None
    if cb is list and is_strings(b):
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
        if ca is float and (cb is Lits or (cb is list and not is_strings(b))):
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
    n, m = go_int64(x), go_int64(y)
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
        if cb is Lits or (cb is list and not is_strings(b)):
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
    return (r - INT64_MIN) % (1 << 64) + INT64_MIN
