"""FilterQL's built-in functions, following qlbridge's ``expr/builtins`` where they exist there.

Each entry says how many arguments it takes and how it relates to time, so the compiler can tell
which calls make a filter time-dependent (``now()``, ``daysago()``, ``yy()``…) and how their value
moves (for ``next_change``). Failures give None (missing), as qlbridge's "not ok" does.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from workers.filterql.dates import (
    NS_PER_HOUR,
    civil_from_days,
    days_from_civil,
    parse_date,
    split_ns,
    weekday,
)
from workers.filterql.values import Time, str_to_number, to_bool, to_text, to_time
from workers.timefmt import NS_PER_DAY, NS_PER_MS, NS_PER_S


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
    s = to_text(v) if v is not None else None
    return s if s is not None else ""


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
    if v is None:
        return None
    c = v.__class__
    if c is str or c is list or c is dict:
        return len(v)
    return 0


def _split(s: Any, sep: Any) -> Any:
    text, by = (to_text(s) if s is not None else None), (to_text(sep) if sep is not None else None)
    if not text or not by:
        return None
    return text.split(by)


def _strip(v: Any) -> Any:
    if v.__class__ is str:
        return v.strip(" \n\t\r")
    if v.__class__ is list:
        return [e.strip(" \n\t\r") if e.__class__ is str else e for e in v]
    return None


def _replace(s: Any, old: Any, new: Any = "") -> Any:
    text = _text_or_empty(s)
    return text.replace(_text_or_empty(old), _text_or_empty(new))


def _join(*args: Any) -> Any:
    sep = to_text(args[-1]) if args[-1] is not None else None
    if sep is None:
        return None
    parts: list[str] = []
    for v in args[:-1]:
        if v.__class__ is list:
            parts.extend(t for t in (to_text(e) for e in v if e is not None) if t is not None)
        elif v is not None and v.__class__ is not dict:
            t = to_text(v)
            if t:
                parts.append(t)
    return sep.join(parts) if parts else None


# -- casts -----------------------------------------------------------------------------------------


def _tostring(v: Any) -> Any:
    if v is None:
        return ""
    if v.__class__ is dict or v.__class__ is list:
        return json.dumps(v, separators=(",", ":"), default=str)
    return to_text(v)


def _tonumber(v: Any) -> Any:
    if v is None:
        return None
    c = v.__class__
    if v is True:
        return 1.0
    if v is False:
        return 0.0
    if c is int or c is float:
        return float(v)
    if c is Time:
        return float(v.ns // NS_PER_MS)
    if c is str:
        n = str_to_number(v)
        return float(n) if n is not None else None
    return None


_HEX = re.compile(r"^0x[0-9a-fA-F]+$")


def _toint(v: Any) -> Any:
    if v is None:
        return None
    c = v.__class__
    if c is int:
        return v
    if c is float:
        return int(v) if math.isfinite(v) else None
    if c is Time:
        return v.ns // NS_PER_MS
    if c is str:
        if _HEX.match(v):
            big = int(v, 16)
            return big if big < 2**63 else None  # Go's ParseInt(…, 16, 64) fails past int64
        n = str_to_number(v)
        if n is None:
            return None
        return int(n) if math.isfinite(n) else None
    if c is list:
        return _toint(v[0]) if v else None
    return None


def _tobool(v: Any) -> Any:
    if v is None:
        return None
    c = v.__class__
    if c is int or c is float:
        return True if v == 1 else False if v == 0 else None
    return to_bool(v)


def _oneof(*args: Any) -> Any:
    for v in args:
        if v is None or v == "" or ((v.__class__ is list or v.__class__ is dict) and not v):
            continue
        return v
    return None


def _exists(v: Any) -> bool:
    return v is not None


# -- email and urls --------------------------------------------------------------------------------

_ADDR = re.compile(r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$")


def _parse_address(v: Any) -> tuple[str, str] | None:
    """(display name, address) of an email (a list reads its first element), or None."""
    if v is None:
        return None
    if v.__class__ is list:
        v = v[0] if v else None
        if v is None:
            return None
    s = to_text(v)
    if not s:
        return None
    s = s.strip()
    m = re.match(r'^\s*(?:"?([^"<]*?)"?\s*)?<([^<>]+)>\s*$', s)
    if m:
        name, addr = (m.group(1) or "").strip(), m.group(2).strip()
    else:
        name, addr = "", s
    if not _ADDR.match(addr):
        return None
    local, _, dom = addr.rpartition("@")
    if not local or not dom or dom.startswith(".") or dom.endswith(".") or ".." in dom:
        return None
    return name, addr


def _email(v: Any) -> Any:
    parsed = _parse_address(v)
    return parsed[1].lower() if parsed else None


def _emaildomain(v: Any) -> Any:
    parsed = _parse_address(v)
    return parsed[1].lower().rpartition("@")[2] if parsed else None


def _emailname(v: Any) -> Any:
    parsed = _parse_address(v)
    return parsed[0] if parsed else None


def _first_text(v: Any) -> str:
    if v is None:
        return ""
    if v.__class__ is list:
        return _first_text(v[0]) if v else ""
    if v.__class__ is str:
        return str(v)
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
    return host or None


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


_PSL_FILE = Path("/usr/share/publicsuffix/public_suffix_list.dat")
# Used only when the system's Public Suffix List is not installed: common multi-label suffixes.
_PSL_FALLBACK = """
com net org edu gov mil int io co ai app dev me info biz us uk de fr jp au ca nz br in cn ru es it nl
co.uk org.uk ac.uk gov.uk me.uk ltd.uk plc.uk net.uk sch.uk nhs.uk
com.au net.au org.au edu.au gov.au co.nz org.nz net.nz govt.nz ac.nz
co.jp ne.jp or.jp ac.jp go.jp com.br net.br org.br gov.br com.cn net.cn org.cn gov.cn
co.in net.in org.in gov.in ac.in com.mx org.mx gob.mx co.za org.za gov.za com.sg edu.sg gov.sg
com.tr com.ar com.co com.hk com.tw co.kr or.kr co.il org.il ac.il com.my com.ph com.vn
github.io herokuapp.com blogspot.com appspot.com cloudfront.net azurewebsites.net
"""


@lru_cache(maxsize=1)
def _psl() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(rules, wildcard parents, exceptions) of the Public Suffix List."""
    try:
        text = _PSL_FILE.read_text(encoding="utf-8")
    except OSError:
        text = _PSL_FALLBACK.replace(" ", "\n")
    rules: set[str] = set()
    wild: set[str] = set()
    exc: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        rule = line.split()[0].lower()
        if rule.startswith("!"):
            exc.add(rule[1:])
        elif rule.startswith("*."):
            wild.add(rule[2:])
        else:
            rules.add(rule)
    return frozenset(rules), frozenset(wild), frozenset(exc)


def public_suffix(domain: str) -> str:
    """The public suffix of a domain (the PSL algorithm, "*" as the default rule)."""
    rules, wild, exc = _psl()
    labels = domain.split(".")
    for i in range(len(labels)):
        cand = ".".join(labels[i:])
        if cand in exc:
            return ".".join(labels[i + 1 :])
        if cand in rules:
            return cand
        if i + 1 < len(labels) and ".".join(labels[i + 1 :]) in wild:
            return cand
    return labels[-1]


def effective_tld_plus_one(domain: str) -> str | None:
    """The registrable domain ("books.amazon.co.uk" -> "amazon.co.uk"), or None."""
    if not domain or domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    suffix = public_suffix(domain)
    if len(domain) <= len(suffix):
        return None
    head = domain[: len(domain) - len(suffix) - 1]
    return head.rpartition(".")[2] + "." + suffix


def _domain(v: Any) -> Any:
    s = _first_text(v)
    url = s.lower()
    if not url.startswith("http"):
        url = "http://" + url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if len(parts.netloc) <= 2 or not host:
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


def _calendar(fn: Callable[[int], Any]) -> Callable[..., Any]:
    def impl(*args: Any) -> Any:
        ns = time_of(args[0]) if args else None
        return fn(ns) if ns is not None else None

    return impl


def _todate(*args: Any) -> Any:
    if len(args) == 1:
        ns = time_of(args[0])
        return Time(ns) if ns is not None else None
    layout, value = (to_text(a) if a is not None else None for a in args)
    if layout is None or value is None:
        return None
    ns = parse_go_layout(layout, value)
    return Time(ns) if ns is not None else None


def daysago_of(then: int, now: int) -> int:
    """Whole days from ``then`` to ``now`` (floor; negative for a future date)."""
    return (now - then) // NS_PER_DAY


_GO_TOKENS = [
    ("2006", r"(?P<Y>\d{4})"),
    ("January", r"(?P<Bf>[A-Za-z]+)"),
    ("Jan", r"(?P<B>[A-Za-z]{3})"),
    ("Monday", r"[A-Za-z]+"),
    ("Mon", r"[A-Za-z]{3}"),
    ("MST", r"[A-Z]{3,5}"),
    ("Z07:00", r"(?P<Z>Z|[+-]\d{2}:\d{2})"),
    ("-07:00", r"(?P<Z>[+-]\d{2}:\d{2})"),
    ("-0700", r"(?P<Z>[+-]\d{4})"),
    ("01", r"(?P<m>\d{2})"),
    ("02", r"(?P<d>\d{2})"),
    ("_2", r"\s?(?P<d>\d{1,2})"),
    ("06", r"(?P<y>\d{2})"),
    ("15", r"(?P<H>\d{2})"),
    ("03", r"(?P<I>\d{2})"),
    ("04", r"(?P<M>\d{2})"),
    ("05", r"(?P<S>\d{2})"),
    ("PM", r"(?P<p>[AaPp][Mm])"),
    ("pm", r"(?P<p>[AaPp][Mm])"),
    (".000000000", r"\.(?P<f>\d{9})"),
    (".000000", r"\.(?P<f>\d{6})"),
    (".000", r"\.(?P<f>\d{3})"),
    ("1", r"(?P<m>\d{1,2})"),
    ("2", r"(?P<d>\d{1,2})"),
    ("3", r"(?P<I>\d{1,2})"),
    ("4", r"(?P<M>\d{1,2})"),
    ("5", r"(?P<S>\d{1,2})"),
]


@lru_cache(maxsize=256)
def _go_layout_regex(layout: str) -> re.Pattern[str] | None:
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(layout):
        for tok, rx in _GO_TOKENS:
            if layout.startswith(tok, i):
                name = re.search(r"\?P<(\w+)>", rx)
                if name and name.group(1) in seen:
                    rx = re.sub(r"\?P<\w+>", "?:", rx)
                elif name:
                    seen.add(name.group(1))
                out.append(rx)
                i += len(tok)
                break
        else:
            out.append(re.escape(layout[i]))
            i += 1
    try:
        return re.compile("^" + "".join(out) + "$")
    except re.error:
        return None


_MONTHS3 = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def parse_go_layout(layout: str, value: str) -> int | None:
    """Parse ``value`` with a Go reference layout ("01/02/2006"), as ``todate(layout, v)`` does."""
    rx = _go_layout_regex(layout)
    if rx is None:
        return None
    m = rx.match(value.strip())
    if not m:
        return None
    g = m.groupdict()
    try:
        if g.get("Y"):
            year = int(g["Y"])
        elif g.get("y"):
            yy = int(g["y"])
            year = yy + (1900 if yy >= 69 else 2000)
        else:
            year = 0
        if g.get("m"):
            month = int(g["m"])
        elif g.get("B") or g.get("Bf"):
            month = _MONTHS3.index((g.get("B") or g.get("Bf") or "")[:3].lower()) + 1
        else:
            month = 1
        day = int(g["d"]) if g.get("d") else 1
        hour = int(g["H"]) if g.get("H") else int(g["I"]) if g.get("I") else 0
        if g.get("p"):
            hour = hour % 12 + (12 if g["p"].lower() == "pm" else 0)
        minute = int(g["M"]) if g.get("M") else 0
        sec = int(g["S"]) if g.get("S") else 0
    except ValueError:
        return None
    if not (1 <= month <= 12) or not (1 <= day <= 31) or hour > 23 or minute > 59 or sec > 59:
        return None
    days = days_from_civil(year, month, day)
    if civil_from_days(days) != (year, month, day):
        return None
    ns = ((days * 24 + hour) * 60 + minute) * 60 * NS_PER_S + sec * NS_PER_S
    if g.get("f"):
        ns += int(g["f"].ljust(9, "0"))
    z = g.get("Z")
    if z and z != "Z":
        sign = 1 if z[0] == "+" else -1
        digits = z[1:].replace(":", "")
        ns -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * NS_PER_S
    return ns


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
