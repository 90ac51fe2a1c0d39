"""FilterQL's built-in functions, following qlbridge's ``expr/builtins`` where they exist there.

Each entry says how many arguments it takes and how it relates to time, so the compiler can tell
which calls make a filter time-dependent (``now()``, ``daysago()``, ``yy()``…) and how their value
moves (for ``next_change``). Failures give None (missing), as qlbridge's "not ok" does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from workers.filterql.dates import (
    NS_PER_HOUR,
    parse_date,
    rfc3339_ns,
    split_ns,
    weekday,
)
from workers.filterql.layouts import parse_layout
from workers.filterql.suffixes import effective_tld_plus_one
from workers.filterql.values import (
    BAD,
    NULL,
    DateMath,
    Lits,
    Time,
    go_bool,
    go_string,
    map_keys_slice,
    to_float64,
    to_int64,
    to_text,
    to_time,
)
from workers.timefmt import NS_PER_DAY


@dataclass(frozen=True, slots=True)
class Function:
    """A built-in: arity, implementation over evaluated arguments, and its time behaviour.

    ``kind`` is "pure" (depends only on its arguments), "now", "todate", "calendar" (a calendar
    field of a time; of now when called without arguments), "daysago", "exists" or "timewindow".
    """

    name: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any]
    kind: str = "pure"
    unit: str = ""
    period: int | None = None


# -- strings ---------------------------------------------------------------------------------------


def _lower(v: Any) -> Any:
    s = to_text(v) if v is not None else None
    return s.lower() if s is not None else None


def _upper(v: Any) -> Any:
    s = to_text(v) if v is not None else None
    return s.upper() if s is not None else None


def _contains(a: Any, b: Any) -> Any:
    left = to_text(a) if a is not None else None
    right = to_text(b) if b is not None else None
    if left is None or right is None:
        return False
    if left == "" or right == "":
        return None
    return right in left


def _text_or_empty(v: Any) -> str:
    """qlbridge's ``Value.ToString()`` of an argument (a missing one is NilValue: "")."""
    return "" if v is None else go_string(v)


def _hasprefix(a: Any, b: Any) -> Any:
    prefix = _text_or_empty(b)
    if prefix == "":
        return None
    return _text_or_empty(a).startswith(prefix)


def _hassuffix(a: Any, b: Any) -> Any:
    suffix = _text_or_empty(b)
    if suffix == "":
        return None
    return _text_or_empty(a).endswith(suffix)


def _len(v: Any) -> Any:
    """Bytes of a string (Go's len), items of a list or map; 0 for numbers, booleans and dates.
    Maps of only booleans or only dates have no length in qlbridge (MapBoolValue, MapTimeValue)."""
    if v is None or v is NULL:
        return None
    c = v.__class__
    if c is str:
        return len(v.encode("utf-8", "surrogatepass"))
    if c is list:
        return len(v)
    if c is dict:
        kinds = {_map_kind(x) for x in v.values() if x is not None}
        return None if kinds in ({"bool"}, {"time"}) else len(v)
    if c is int or c is float or c is bool or c is Time:
        return 0
    return None


def _map_kind(x: Any) -> str:
    c = x.__class__
    if c is bool:
        return "bool"
    if c is str and rfc3339_ns(x) is not None:
        return "time"
    return str(c.__name__)


def _split(s: Any, sep: Any) -> Any:
    text, by = (to_text(s) if s is not None else None), (to_text(sep) if sep is not None else None)
    if not text or not by:
        return None
    return text.split(by)


def _strip(v: Any) -> Any:
    if v.__class__ is str:
        return v.strip(" \n\t\r")
    if v.__class__ is list and v and all(e.__class__ is str for e in v):
        return [e.strip(" \n\t\r") for e in v]
    return None


MAX_RESULT_CHARS = 1 << 20
"""Longest text a function may build: ``replace(x, "", y)`` puts y between every two characters,
so two 64 KiB values would ask for 4 G characters. Longer results are missing (None)."""


def _replace(s: Any, old: Any, new: Any = "") -> Any:
    text, find, put = _text_or_empty(s), _text_or_empty(old), _text_or_empty(new)
    count = len(text) + 1 if find == "" else text.count(find)
    if len(text) + count * (len(put) - len(find)) > MAX_RESULT_CHARS:
        return None
    return text.replace(find, put)


def _join(*args: Any) -> Any:
    sep = to_text(args[-1]) if args[-1] is not None else None
    if sep is None:
        return None
    parts: list[str] = []
    for v in args[:-1]:
        c = v.__class__
        if c is list or c is Lits:
            parts.extend(_text_or_empty(e) for e in v)
        elif c is str or c is int or c is float:
            t = go_string(v)
            if t:
                parts.append(t)
    return sep.join(parts) if parts else None


# -- casts -----------------------------------------------------------------------------------------


def _nil(v: Any) -> bool:
    """qlbridge's ``Value.Nil()``: missing, NULL, "", an empty list or map, NaN."""
    if v is None or v is NULL:
        return True
    c = v.__class__
    if c is str or c is list or c is dict or c is Lits:
        return not v
    if c is float:
        return math.isnan(v)
    return c is int and v == -(1 << 31)


def _tostring(v: Any) -> Any:
    return "" if _nil(v) else go_string(v)


def _tonumber(v: Any) -> Any:
    if v is None:
        return None
    if v.__class__ is float and math.isnan(v):
        return None
    return to_float64(v)


def _toint(v: Any) -> Any:
    if v is None:
        return None
    return to_int64(v)


def _tobool(v: Any) -> Any:
    if _nil(v):
        return None
    return go_bool(v)


def _oneof(*args: Any) -> Any:
    for v in args:
        if v is BAD or _nil(v):
            continue
        return v
    return None


def _exists(v: Any) -> bool:
    """exists(x) as qlbridge's builtin: any present value, except a map that is not all ints."""
    if v is None or v is NULL:
        return False
    if v.__class__ is dict:
        kinds = {x.__class__ for x in v.values() if x is not None}
        return kinds == {int}
    return True


# -- email and urls --------------------------------------------------------------------------------

_ADDR = re.compile(r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$")


def _bracketed(s: str) -> tuple[str, str] | None:
    """``Name <addr>`` or ``"Name" <addr>`` split in one pass, or None.

    The same reading as ``^(?:"?([^"<]*?)"?\\s*)?<([^<>]+)>$`` without a backtracking regex, which
    took minutes on a value of a few thousand spaces.
    """
    if not s.endswith(">"):
        return None
    i = s.find("<")
    if i < 0 or s.find("<", i + 1) >= 0:
        return None
    addr = s[i + 1 : -1]
    if not addr or ">" in addr:
        return None
    name = s[:i].rstrip()
    if name.startswith('"'):
        name = name[1:]
    if name.endswith('"'):
        name = name[:-1]
    if '"' in name:
        return None
    return name.strip(), addr.strip()


def _parse_address(v: Any) -> tuple[str, str] | None:
    """(display name, address) of an email (a list reads its first element), or None."""
    if v is None:
        return None
    s = to_text(v)
    if not s:
        return None
    s = s.strip()
    bracketed = _bracketed(s)
    name, addr = bracketed if bracketed is not None else ("", s)
    if not _ADDR.match(addr):
        return None
    local, _, dom = addr.rpartition("@")
    if not local or not dom or dom.startswith(".") or dom.endswith(".") or ".." in dom:
        return None
    return name, addr


def _email(v: Any) -> Any:
    if _nil(v):
        return None
    parsed = _parse_address(_first_text(v))
    return parsed[1].lower() if parsed else None


def _emaildomain(v: Any) -> Any:
    parsed = _parse_address(v)
    return parsed[1].lower().rpartition("@")[2] if parsed else None


def _emailname(v: Any) -> Any:
    parsed = _parse_address(v)
    return parsed[0] if parsed else None


def _first_text(v: Any) -> str:
    """host(), path() and email() read a string, or a list's first item as text (a map of plain
    values is a list of its keys to qlbridge)."""
    c = v.__class__
    if c is str:
        return str(v)
    if (c is list or c is Lits) and v:
        return _text_or_empty(v[0])
    if c is dict:
        keys = map_keys_slice(v)
        return keys[0] if keys else ""
    return ""


def _host(v: Any) -> Any:
    s = _first_text(v)
    if not s:
        return None
    url = s.lower()
    if not url.startswith("http"):
        url = "http://" + url
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    host = netloc.rpartition("@")[2]
    if " " in host:
        return None
    return host


def _path(v: Any) -> Any:
    s = _first_text(v)
    if not s:
        return None
    url = s.lower()
    if len(url) > 6 and "/" not in url[:5] and not url.startswith("http"):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return None
    if re.search(r"%(?![0-9a-fA-F]{2})", url):
        return None
    return unquote(parts.path)


def _domain(v: Any) -> Any:
    """The registrable domain of a URL's host (with its port, if any, as Go's URL.Host has it)."""
    c = v.__class__
    if c is str:
        s = str(v)
    elif c is list and v and all(e.__class__ is str for e in v):
        s = v[0]
    else:
        s = ""
    url = s.lower()
    if not url.startswith("http"):
        url = "http://" + url
    try:
        host = urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:
        return None
    if len(host) <= 2:
        return None
    return effective_tld_plus_one(host)


# -- time ------------------------------------------------------------------------------------------


def time_of(v: Any) -> int | None:
    """ns of a value used as a date by the time functions."""
    if v is None:
        return None
    if v.__class__ is list:
        return time_of(v[0]) if v else None
    return to_time(v)


def yy_of(ns: int) -> int:
    y = split_ns(ns)[0]
    if y >= 2000:
        return y - 2000
    if y >= 1900:
        return y - 1900
    return y


def mm_of(ns: int) -> int:
    return split_ns(ns)[1]


def yymm_of(ns: int) -> str:
    y, m, _d, _r = split_ns(ns)
    return f"{y % 100:02d}{m:02d}"


def dayofweek_of(ns: int) -> int:
    return weekday(ns)


def hourofday_of(ns: int) -> int:
    return (ns % NS_PER_DAY) // NS_PER_HOUR


def hourofweek_of(ns: int) -> int:
    return weekday(ns) * 24 + hourofday_of(ns)


def calendar_time(v: Any) -> int | None:
    """The instant yy(), mm(), dayofweek()... read from their argument: a date, else its text
    (qlbridge's ValueToString: a list's first item, a number as Go prints it) read as a date."""
    if v is None or v is NULL:
        return None
    c = v.__class__
    if c is Time or c is DateMath:
        return v.ns  # type: ignore[no-any-return]
    text = to_text(v)
    return parse_date(text) if text else None


def _calendar(fn: Callable[[int], Any]) -> Callable[..., Any]:
    def impl(*args: Any) -> Any:
        ns = calendar_time(args[0]) if args else None
        return fn(ns) if ns is not None else None

    return impl


def _todate(*args: Any) -> Any:
    if len(args) == 1:
        ns = time_of(args[0])
        return Time(ns) if ns is not None else None
    layout, value = (to_text(a) if a is not None else None for a in args)
    if layout is None or value is None:
        return None
    ns = parse_layout(layout, value)
    return Time(ns) if ns is not None else None


def daysago_of(then: int, now: int) -> int:
    """Whole days from ``then`` to ``now`` (floor; negative for a future date)."""
    return (now - then) // NS_PER_DAY


def _timewindow(*_args: Any) -> Any:  # compiled specially; never called
    return None


def _now() -> Any:  # compiled specially; never called
    return None


def _daysago(*_args: Any) -> Any:  # compiled specially; never called
    return None


FUNCTIONS: dict[str, Function] = {}


def _add(fn: Function, *aliases: str) -> None:
    FUNCTIONS[fn.name] = fn
    for a in aliases:
        FUNCTIONS[a] = fn


_add(Function("tolower", 1, 1, _lower), "string.lowercase")
_add(Function("toupper", 1, 1, _upper), "string.uppercase")
_add(Function("contains", 2, 2, _contains))
_add(Function("hasprefix", 2, 2, _hasprefix))
_add(Function("hassuffix", 2, 2, _hassuffix))
_add(Function("len", 1, 1, _len), "char_length")
_add(Function("split", 2, 2, _split), "string.split")
_add(Function("strip", 1, 1, _strip), "string.strip")
_add(Function("replace", 2, 3, _replace))
_add(Function("join", 2, None, _join))
_add(Function("exists", 1, 1, _exists, kind="exists"))
_add(Function("tostring", 1, 1, _tostring))
_add(Function("tonumber", 1, 1, _tonumber))
_add(Function("toint", 1, 1, _toint))
_add(Function("tobool", 1, 1, _tobool))
_add(Function("oneof", 2, None, _oneof))
_add(Function("email", 1, 1, _email))
_add(Function("emaildomain", 1, 1, _emaildomain))
_add(Function("emailname", 1, 1, _emailname))
_add(Function("domain", 1, 1, _domain))
_add(Function("host", 1, 1, _host))
_add(Function("path", 1, 1, _path))
_add(Function("todate", 1, 2, _todate, kind="todate"))
_add(Function("now", 0, 0, _now, kind="now"))
_add(Function("daysago", 1, 1, _daysago, kind="daysago"))
_add(Function("yy", 0, 1, _calendar(yy_of), kind="calendar", unit="year"))
_add(
    Function("mm", 0, 1, _calendar(mm_of), kind="calendar", unit="month", period=12), "monthofyear"
)
_add(Function("yymm", 0, 1, _calendar(yymm_of), kind="calendar", unit="month"))
_add(Function("dayofweek", 0, 1, _calendar(dayofweek_of), kind="calendar", unit="day", period=7))
_add(Function("hourofday", 0, 1, _calendar(hourofday_of), kind="calendar", unit="hour", period=24))
_add(
    Function("hourofweek", 0, 1, _calendar(hourofweek_of), kind="calendar", unit="hour", period=168)
)
_add(Function("timewindow", 3, 3, _timewindow, kind="timewindow"))

# Used by the docs and the CLI's help.
FUNCTION_NAMES = sorted(FUNCTIONS)

__all__ = ["FUNCTIONS", "FUNCTION_NAMES", "Function", "daysago_of", "parse_date", "time_of"]
