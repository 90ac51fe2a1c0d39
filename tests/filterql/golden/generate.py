"""Random FilterQL filters and profiles, answered by the real qlbridge (the oracle), kept as golden data.

Regenerate the golden corpus (needs the oracle built as tools/qlbridge-oracle/README.md says; the
default --oracle is $QLFILTER, else build.sh's /tmp/qlbridge-oracle/out/qlfilter):

    .venv/bin/python -m tests.filterql.golden.generate write --oracle PATH/qlfilter

Measure agreement on fresh seeds (nothing is written; disagreements are grouped by the documented
difference that explains them, and any that none explains are printed):

    .venv/bin/python -m tests.filterql.golden.generate measure --oracle PATH/qlfilter --seed 1000 --count 20000

The generator covers every construct of docs/filterql.md that qlbridge also has (phrases, infix
and group logic with and without commas, comments, every comparison, IN / INTERSECTS / CONTAINS /
LIKE / BETWEEN and their NOT forms, ``(...)`` and ``[...]`` lists, EXISTS, INCLUDE, arithmetic, bare
values, names with dots and quotes, strings with quotes and backslashes, FROM / LIMIT / WITH /
ALIAS, the built-in functions both implement, ``todate`` with a Go layout), over profiles with
missing fields, lists, maps, numeric strings, booleans, RFC 3339 times (the oracle hands those to
qlbridge as ``time.Time``, as a Lytics date field is), date math with every unit (months and years
included) and several "now"s. It leaves out only what docs/filterql.md lists as a difference (see
the comments where it does).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
GOLDEN = HERE / "cases.jsonl.gz"
ORACLE_COMMIT = "34c67a30ec214f83c3110753204459405dca889f"
GOLDEN_SEEDS = (1, 2, 3, 4, 5, 6, 7)
GOLDEN_PER_SEED = 1000

Case = dict[str, Any]
T = TypeVar("T")
_STARTS_WITH_CALL = re.compile(r"[A-Za-z_][\w.]*\(")

# -- "now" and times ---------------------------------------------------------------------------------

NOWS = (
    "2026-03-10T12:00:00Z",  # a Tuesday
    "2026-03-31T08:15:30Z",  # a month end: "now-1M" is March 3
    "2026-01-31T23:59:59Z",
    "2024-02-29T00:00:00Z",  # a leap day
    "2026-04-01T00:00:00Z",  # a month start
    "2025-12-31T23:00:00Z",  # a year end
    "2026-07-05T06:07:08Z",
)

S = 1
MIN = 60
HOUR = 3600
DAY = 86400

_UNITS = {"s": S, "m": MIN, "h": HOUR, "d": DAY, "w": 7 * DAY}


def _epoch(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _rfc(sec: int, frac: str = "") -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def _add_months(sec: int, months: int) -> int:
    """Go's AddDate(0, months, 0) on a UTC instant (the day overflows into the next month)."""
    from datetime import UTC, datetime, timedelta

    t = datetime.fromtimestamp(sec, UTC)
    total = t.year * 12 + (t.month - 1) + months
    year, month = divmod(total, 12)
    first = datetime(year, month + 1, 1, t.hour, t.minute, t.second, tzinfo=UTC)
    return int((first + timedelta(days=t.day - 1)).timestamp())


class Gen:
    """One seeded stream of cases."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.now = 0
        self.slugs: list[str] = []
        self.used: set[str] = set()

    # -- small helpers -------------------------------------------------------------------------
    def pick(self, items: Sequence[T]) -> T:
        return items[self.r.randrange(len(items))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # -- date math -------------------------------------------------------------------------------
    def datemath(self) -> tuple[str, int]:
        """A date math string and the instant it means at ``self.now`` (seconds)."""
        if self.chance(0.03):
            return "now", self.now  # text to qlbridge (and here): never a date
        unit = self.pick("smhdwdddMMy")
        n = self.pick((1, 1, 2, 3, 7, 10, 30, 90)) if unit in "smh" else self.pick((1, 2, 3, 7, 14))
        sign = self.pick("--+")
        k = n if sign == "+" else -n
        if unit == "M":
            at = _add_months(self.now, k)
        elif unit == "y":
            at = _add_months(self.now, 12 * k)
        else:
            at = self.now + k * _UNITS[unit]
        return f"now{sign}{n}{unit}", at

    def instant(self) -> int:
        """A time near now: on, around and away from the usual date math pivots."""
        r = self.r
        roll = r.random()
        if roll < 0.35:
            _text, at = self.datemath()
            return at + self.pick((0, 0, 0, -1, 1, -2, 2))
        if roll < 0.7:
            return self.now + r.randint(-400 * DAY, 60 * DAY)
        if roll < 0.9:
            return self.now + r.randint(-3 * HOUR, 3 * HOUR)
        return self.now + self.pick((-1, 0, 1))

    def time_text(self) -> str:
        sec = self.instant()
        frac = self.pick(("", "", "", ".5", ".999", ".000001"))
        return _rfc(sec, frac)

    # -- profiles ------------------------------------------------------------------------------
    def profile(self) -> dict[str, Any]:
        r = self.r
        p: dict[str, Any] = {}
        for name, make in _FIELDS.items():
            if r.random() < (0.8 if name in self.used else 0.04):
                p[name] = make(self)
        if p and self.chance(0.03):
            p[self.pick(list(p))] = None
        return p

    # -- filters -------------------------------------------------------------------------------
    def case(self) -> Case:
        self.now = _epoch(self.pick(NOWS)) if self.chance(0.8) else self.random_now()
        includes = ""
        self.slugs = []
        self.used = set()
        if self.chance(0.12):
            defs = []
            for slug in ("a1", "b2"):
                defs.append(f"FILTER {self.phrase(1)} ALIAS {slug}")
                self.slugs.append(slug)
            includes = ";\n".join(defs)
        text = "FILTER " + self.top()
        if self.chance(0.05):
            text += self.pick((" FROM user", " LIMIT 10", " ALIAS some_alias", ' WITH a = "b"'))
        case: Case = {"filter": text, "profile": self.profile(), "now": _rfc(self.now)}
        if includes:
            case["includes"] = includes
        return case

    def random_now(self) -> int:
        return _epoch("2024-01-01T00:00:00Z") + self.r.randrange(3 * 365 * DAY)

    def top(self) -> str:
        if self.chance(0.01):
            return self.pick(("*", "match_all"))
        roll = self.r.random()
        if roll < 0.25:
            return self.leaf()
        if roll < 0.35:
            op = self.pick((" AND ", " OR ", " && ", " || "))
            return op.join(self.phrase(1) for _ in range(self.r.randint(2, 3)))
        return self.phrase(self.r.randint(1, 3))

    def phrase(self, depth: int) -> str:
        if depth <= 0 or self.chance(0.35):
            return self.leaf()
        roll = self.r.random()
        if roll < 0.7:
            op = self.pick(("AND", "OR"))
            n = self.pick((1, 2, 2, 3, 3, 4))
            parts = [self.phrase(depth - 1) for _ in range(n)]
            sep = self.pick((", ", ",\n    ", "\n    ", " ", ", -- a comment\n    "))
            text = parts[0]
            for part in parts[1:]:
                # Without a comma or a line break, qlbridge reads a NOT that follows a phrase as
                # that phrase's "x NOT IN" (a documented difference): write the separator there.
                text += (", " if sep == " " and part.startswith("NOT") else sep) + part
            return f"{op} ({text})"
        if roll < 0.85:
            return f"NOT ({self.phrase(depth - 1)})"
        if roll < 0.9:
            inner = self.group_or_leaf(depth - 1)
            if _STARTS_WITH_CALL.match(inner):
                # qlbridge binds NOT to the call alone (NOT f(x) == 1 is (NOT f(x)) == 1): a
                # documented difference, so write what the author means
                return f"NOT ({inner})"
            return f"NOT {inner}"
        return f"({self.phrase(depth - 1)})"

    def group_or_leaf(self, depth: int) -> str:
        if depth > 0 and self.chance(0.5):
            op = self.pick(("AND", "OR"))
            return (
                f"{op} ({', '.join(self.phrase(depth - 1) for _ in range(self.r.randint(1, 3)))})"
            )
        return self.leaf()

    def leaf(self) -> str:
        kinds: list[tuple[float, Callable[[], str]]] = [
            (14, self.compare),
            (10, self.date_compare),
            (4, self.exists),
            (7, self.member),
            (4, self.contains),
            (4, self.like),
            (6, self.between),
            (12, self.function),
            (3, self.arith),
            (3, self.bare),
            (2, self.include),
        ]
        total = sum(w for w, _ in kinds)
        x = self.r.random() * total
        for w, fn in kinds:
            x -= w
            if x < 0:
                return fn()
        return self.compare()

    # -- leaves ----------------------------------------------------------------------------------
    def field(self, kind: str | None = None, whole_map: bool = True) -> str:
        if kind is not None and self.chance(0.8):
            names = [n for n, k in _KINDS.items() if k == kind]
            name = self.pick(names)
        elif self.chance(0.08):
            name = self.pick(("missing", "first_name", "nothing_here"))
        else:
            name = self.pick(list(_KINDS))
        self.used.add(name)
        return _spell(self, name, whole_map)

    def literal(self, kind: str) -> str:
        r = self.r
        if kind == "int":
            return str(self.pick((0, 1, 3, 5, 12, 42, 50, 100, -2, 7, 55)))
        if kind == "float":
            return self.pick(("1.5", "42.0", "55.5", "0.5", "12.25", "-1.5", "1e3", "99.9"))
        if kind == "numstr":
            return json.dumps(self.pick(("42", "12", "1234.5", "1,234.50", "$12", "7", "abc", "0")))
        if kind == "bool":
            return self.pick(("true", "false", '"true"', '"false"'))
        if kind == "time":
            if self.chance(0.6):
                return json.dumps(self.datemath()[0])
            return json.dumps(self.time_text())
        if kind in ("strlist", "str", "email", "url"):
            return json.dumps(self.pick(_STRINGS))
        if kind == "numlist":
            return str(self.pick((1, 2, 3, 42, 7)))
        if kind == "timelist":
            return json.dumps(self.datemath()[0])
        if kind == "map":
            return json.dumps(self.pick(("momentum", "risk", "color", "nope")))
        del r
        return json.dumps(self.pick(_STRINGS))

    def any_literal(self) -> str:
        return self.literal(self.pick(("int", "float", "numstr", "bool", "time", "str")))

    def compare(self) -> str:
        op = self.pick(("==", "==", "=", "!=", "<>", ">", ">=", "<", "<="))
        kind = self.pick(("int", "float", "numstr", "str", "bool", "strlist", "numlist", "map"))
        f = self.field(kind)
        lit = self.literal(kind) if self.chance(0.8) else self.any_literal()
        if self.chance(0.1):
            lit = self.field()
        if self.chance(0.25) and not lit.startswith("-"):
            # (qlbridge reads "-2 < x" as minus applied to "2 < x": a documented difference)
            return f"{lit} {op} {f}"
        return f"{f} {op} {lit}"

    def date_compare(self) -> str:
        op = self.pick(("==", "!=", ">", ">=", "<", "<=", ">", "<"))
        f = self.field(self.pick(("time", "time", "time", "timelist", "map")))
        rhs = json.dumps(self.datemath()[0] if self.chance(0.75) else self.time_text())
        if self.chance(0.2):
            return f"{rhs} {op} {f}"
        return f"{f} {op} {rhs}"

    def exists(self) -> str:
        f = self.field()
        return self.pick((f"EXISTS {f}", f"exists({f})", f"NOT EXISTS {f}"))

    def lit_list(self, kind: str) -> str:
        items = [self.literal(kind) for _ in range(self.r.randint(1, 3))]
        if self.chance(0.15):
            items.append(self.any_literal())
        if self.chance(0.15) and all(not i.startswith("-") for i in items):
            return "[" + ", ".join(items) + "]"  # a JSON array: qlbridge reads numbers as floats
        return "(" + ", ".join(items) + ")"

    def member(self) -> str:
        kind = self.pick(("str", "strlist", "int", "numlist", "map", "numstr"))
        f = self.field(kind)
        roll = self.r.random()
        if roll < 0.15:
            return f"{self.literal('str')} IN {self.field('strlist')}"
        if roll < 0.2:
            return f"{f} IN {self.field(self.pick(('strlist', 'map', 'numlist')))}"
        op = self.pick(("IN", "IN", "NOT IN", "INTERSECTS", "NOT INTERSECTS"))
        items = self.lit_list(kind)
        if "INTERSECTS" in op and items.startswith("["):
            items = "(" + items[1:-1] + ")"  # qlbridge parses [...] only after IN
        return f"{f} {op} {items}"

    def contains(self) -> str:
        kind = self.pick(("str", "strlist", "email", "url", "int", "numlist"))
        f = self.field(kind)
        sub = self.pick(('"o"', '"a"', '"beta"', '"@"', '"blog"', '"4"', "4", '""', '"Yo"'))
        op = self.pick(("CONTAINS", "CONTAINS", "NOT CONTAINS"))
        return f"{f} {op} {sub}"

    def like(self) -> str:
        kind = self.pick(("str", "strlist", "url", "email"))
        f = self.field(kind)
        pat = self.pick(_PATTERNS)
        op = self.pick(("LIKE", "LIKE", "NOT LIKE"))
        return f"{f} {op} {json.dumps(pat)}"

    def between(self) -> str:
        op = self.pick(("BETWEEN", "BETWEEN", "NOT BETWEEN"))
        if self.chance(0.45):
            f = self.field(self.pick(("int", "float", "numstr")))
            lo, hi = sorted((self.pick((0, 1, 3, 10, 12, 40, 42)), self.pick((5, 42, 50, 100))))
            los, his = str(lo), str(hi)
            if self.chance(0.2):
                los, his = f"{lo}.5", f"{hi}.5"
            if self.chance(0.1):
                los = json.dumps(los)
            return f"{f} {op} {los} AND {his}"
        f = self.field(self.pick(("time", "time", "timelist")))
        a, b = self.datemath()[0], self.datemath()[0]
        if self.chance(0.2):
            a = self.time_text()
        return f"{f} {op} {json.dumps(a)} AND {json.dumps(b)}"

    def function(self) -> str:
        make = self.pick(_FUNCTIONS)
        text: str = make(self)
        return text

    def arith(self) -> str:
        f = self.field(self.pick(("int", "float", "numstr")))
        op = self.pick(("+", "-", "*", "/", "%"))
        n = self.pick((1, 2, 3, 4, 10, "1.5", "0"))
        cmp_ = self.pick(("==", ">", "<", ">=", "!="))
        target = self.pick((0, 1, 10, 21, 42, 84, 43, "44.5"))
        if self.chance(0.2):
            return f"{f} {op} {self.field('int')} {cmp_} {target}"
        return f"{f} {op} {n} {cmp_} {target}"

    def bare(self) -> str:
        f = self.field(self.pick(("bool", "bool", "int", "str")))
        if self.chance(0.2):
            return self.pick(("true", "false"))
        return f

    def include(self) -> str:
        if not self.slugs:
            return self.compare()
        slug = self.pick(self.slugs)
        return self.pick((f"INCLUDE {slug}", f"NOT INCLUDE {slug}"))


# -- the field pool ---------------------------------------------------------------------------------

_STRINGS = (
    "Yoda",
    "yoda",
    "Luke Skywalker",
    "",
    "p",
    "pro",
    "free",
    "gold",
    "team",
    "beta",
    "b2b",
    "vip",
    "Peoria, IL",
    "42",
    "12",
    "abc",
    "true",
    "1",
    "x",
    "yoda@dagobah.com",
    "red",
    'Toys R" Us',
    "a\\b",
    "tab\\t",
)

_PATTERNS = (
    "*da",
    "Yo*",
    "y?da",
    "*blog*",
    "**blog**",
    "https://*",
    "https://**",
    "*@*",
    "%@%",
    "[a-z]*",
    "[A-Z]*",
    "*",
    "**",
    "p*",
    "*o*",
    "b*",
    "??",
    "*.com",
    "*e*a*",
    "pro",
)


def _strs(g: Gen) -> str:
    return str(g.pick(_STRINGS))


def _numstr(g: Gen) -> str:
    return str(
        g.pick(
            (
                "1,234.50",
                "$12",
                "42",
                "12",
                "-3.5",
                "1e3",
                "0x1F",
                "abc",
                "",
                " 7 ",
                "3.0",
                "€5",
                "55",
                "0",
                "100",
            )
        )
    )


_FIELDS: dict[str, Callable[[Gen], Any]] = {
    "name": lambda g: g.pick(
        (
            "Yoda",
            "yoda",
            "Luke Skywalker",
            "",
            "p",
            "Anakin",
            "BB-8",
            'Toys R" Us',
            "a\\b",
            "Ünïcode",
        )
    ),
    "plan": lambda g: g.pick(("pro", "free", "gold", "team", "Pro", 42, True)),
    "email": lambda g: g.pick(
        (
            "yoda@dagobah.com",
            "Luke <Luke@Rebels.org>",
            "not-an-email",
            "a@b.co.uk",
            "",
            "YODA@Dagobah.com",
        )
    ),
    "url": lambda g: g.pick(
        (
            "https://example.com/blog/1",
            "http://www.books.amazon.co.uk/a/b?q=1",
            "example.com",
            "https://sub.example.org:8080/a/b.html",
            "/just/path",
            "",
            "https://blog.example.com",
        )
    ),
    "city": lambda g: g.pick(("Peoria, IL", "Detroit", "")),
    "ltv": _numstr,
    "zip": lambda g: g.pick(("55401", "02134", "abc", 55401)),
    "visits": lambda g: g.pick((-5, 0, 1, 3, 4, 12, 40, 42, 43, 50, 100, 2**40, 42.0, "42")),
    "age": lambda g: g.r.randint(0, 99),
    "score": lambda g: g.pick((55.5, 0.0, 12.25, -1.5, 42.0, 1e20, 0.5, 99.9, 50)),
    "vip": lambda g: g.pick((True, False, True, False, "true", 1)),
    "active": lambda g: g.pick((True, False)),
    "optin": lambda g: g.pick(("true", "false", "1", "0", "yes", "T")),
    "signup": lambda g: g.time_text(),
    "last_login": lambda g: g.time_text(),
    "renewal": lambda g: g.time_text(),
    "tags": lambda g: g.pick(
        ([], ["beta", "b2b"], ["vip"], ["1", "2"], ["a", "b", "c"], ["pro", "Yoda"], ["x"])
    ),
    "nums": lambda g: g.pick(([1, 2, 3], [42], [], [1.5, 2], [12, 50])),
    "logins": lambda g: [g.time_text() for _ in range(g.r.randint(0, 3))],
    "mixed": lambda g: g.pick(([1, "a", True], ["a", 1], [None, "x"], ["x", None])),
    "scores": lambda g: {
        k: g.r.randint(-5, 100) for k in g.pick((("momentum",), ("momentum", "risk"), ("risk",)))
    },
    "attrs": lambda g: g.pick(({"color": "red", "size": "L"}, {"color": "blue"}, {})),
    "rates": lambda g: g.pick(({"a": 1.5, "b": 2}, {"a": 0.25})),
    "flags": lambda g: g.pick(({"beta": True}, {"beta": False, "vip": True})),
    "dates": lambda g: {"signup": g.time_text()},
    "props": lambda g: g.pick(({"a": 1, "b": "x"}, {"momentum": 3, "color": "red"})),
    "utm.source": lambda g: g.pick(("google", "newsletter", "")),
}

_KINDS: dict[str, str] = {
    "name": "str",
    "plan": "str",
    "email": "email",
    "url": "url",
    "city": "str",
    "ltv": "numstr",
    "zip": "numstr",
    "visits": "int",
    "age": "int",
    "score": "float",
    "vip": "bool",
    "active": "bool",
    "optin": "bool",
    "signup": "time",
    "last_login": "time",
    "renewal": "time",
    "tags": "strlist",
    "nums": "numlist",
    "logins": "timelist",
    "mixed": "strlist",
    "scores": "map",
    "attrs": "map",
    "rates": "map",
    "flags": "map",
    "dates": "map",
    "props": "map",
    "utm.source": "str",
}

_MAP_KEYS = {
    "scores": ("momentum", "risk"),
    "attrs": ("color", "size"),
    "rates": ("a", "b"),
    "flags": ("beta", "vip"),
    "dates": ("signup",),
    "props": ("a", "b", "color"),
}


def _spell(g: Gen, name: str, whole_map: bool = True) -> str:
    """A field as a filter writes it: plain, back-quoted, single-quoted, or a map key path.

    ``whole_map=False``: a map field is always read through a key. A string function reads a map
    of plain values as the list of its keys and takes the first, and Go iterates maps in random
    order, so qlbridge's answer there is random (a documented difference).
    """
    if name in _MAP_KEYS and (g.chance(0.6) or not whole_map):
        key = g.pick(_MAP_KEYS[name] + ("nope",))
        return f"`{name}`.`{key}`" if g.chance(0.15) else f"{name}.{key}"
    if name == "utm.source":
        return g.pick(("utm.source", "`utm.source`"))
    roll = g.r.random()
    if roll < 0.05:
        return f"`{name}`"
    if roll < 0.08:
        return f"'{name}'"
    return name


# -- functions ---------------------------------------------------------------------------------------


def _fn_case(g: Gen) -> str:
    fn = g.pick(("tolower", "string.lowercase", "string.uppercase"))
    f = g.field(g.pick(("str", "strlist", "email")), whole_map=False)
    target = json.dumps(g.pick(("yoda", "YODA", "Yoda", "pro", "PRO", "", "beta")))
    return g.pick(
        (f"{fn}({f}) == {target}", f"{fn}({f}) != {target}", f'{fn}({f}) IN ({target}, "pro")')
    )


def _fn_contains(g: Gen) -> str:
    f = g.field(g.pick(("str", "url", "email", "strlist", "int")), whole_map=False)
    sub = json.dumps(g.pick(("o", "p", "", "blog", "@", "4")))
    fn = g.pick(("contains", "hasprefix", "hassuffix"))
    text = f"{fn}({f}, {sub})"
    return g.pick((text, text, f"{text} == true", f"NOT {text}"))


def _fn_len(g: Gen) -> str:
    f = g.field()
    return f"len({f}) {g.pick(('>', '==', '<', '>='))} {g.pick((0, 1, 2, 3, 4, 5))}"


def _fn_text(g: Gen) -> str:
    f = g.field(g.pick(("str", "strlist", "numstr")), whole_map=False)
    roll = g.r.random()
    if roll < 0.2:
        return f'split({f}, ",") {g.pick(("IN", "INTERSECTS"))} ("Peoria", " IL", "a")'
    if roll < 0.4:
        return f"strip({f}) == {json.dumps(g.pick(('Yoda', '7', '', 'pro')))}"
    if roll < 0.6:
        return f'replace({f}, "o", "0") == {json.dumps(g.pick(("Y0da", "pr0", "b2b")))}'
    if roll < 0.8:
        return f'join({f}, "-") == {json.dumps(g.pick(("beta-b2b", "a-b-c", "Yoda", "1-2")))}'
    return f'oneof({f}, "none") == {json.dumps(g.pick(("none", "Yoda", "pro", "beta")))}'


def _fn_email(g: Gen) -> str:
    f = g.field(g.pick(("email", "email", "str")), whole_map=False)
    fn = g.pick(("email", "emaildomain", "emailname"))
    target = json.dumps(
        g.pick(
            (
                "yoda@dagobah.com",
                "dagobah.com",
                "luke@rebels.org",
                "rebels.org",
                "Luke",
                "b.co.uk",
                "",
            )
        )
    )
    return f"{fn}({f}) {g.pick(('==', '!='))} {target}"


def _fn_url(g: Gen) -> str:
    f = g.field(g.pick(("url", "url", "str")), whole_map=False)
    fn = g.pick(("domain", "host", "path"))
    target = json.dumps(
        g.pick(
            (
                "example.com",
                "amazon.co.uk",
                "www.books.amazon.co.uk",
                "/blog/1",
                "/a/b",
                "example.org",
                "sub.example.org:8080",
                "/a/b.html",
            )
        )
    )
    return f"{fn}({f}) {g.pick(('==', '!=', 'LIKE'))} {target}"


def _fn_cast(g: Gen) -> str:
    fn = g.pick(("tonumber", "toint", "tostring", "tobool"))
    f = g.field(g.pick(("numstr", "int", "float", "bool", "str")), whole_map=fn == "tostring")
    if fn == "tobool":
        return f"{fn}({f}) == {g.pick(('true', 'false'))}"
    if fn == "tostring":
        return f"{fn}({f}) == {json.dumps(g.pick(('42', '12', 'true', '55.5', 'Yoda', '1e+20')))}"
    return f"{fn}({f}) {g.pick(('==', '>', '<', '>='))} {g.pick((0, 12, 42, 1000, 55, 1234))}"


def _fn_time(g: Gen) -> str:
    roll = g.r.random()
    f = g.field(g.pick(("time", "time", "timelist", "str")), whole_map=False)
    if roll < 0.25:
        dm = json.dumps(g.datemath()[0])
        return g.pick(
            (
                f"todate({f}) {g.pick(('>', '<'))} {dm}",
                f"now() > {f}",
                f"{f} < now()",
                f"todate({f}) > todate({dm})",
            )
        )
    if roll < 0.32:
        layout, value = g.pick(_LAYOUTS)
        return f"todate({json.dumps(layout)}, {value}) {g.pick(('>', '<'))} {json.dumps(g.datemath()[0])}"
    fn = g.pick(("yy", "mm", "monthofyear", "yymm", "dayofweek", "hourofday", "hourofweek"))
    arg = f if g.chance(0.5) else ""
    targets = {
        "yy": (24, 25, 26),
        "mm": (1, 2, 3, 4, 12),
        "monthofyear": (3, 7),
        "yymm": ('"2603"', '"2403"'),
        "dayofweek": (0, 1, 2, 3, 6),
        "hourofday": (0, 6, 12, 23),
        "hourofweek": (0, 36, 50),
    }
    target = g.pick(targets[fn])
    return f"{fn}({arg}) {g.pick(('==', '!=', '>', '<', '>=', '<='))} {target}"


_LAYOUTS = (
    ("2006-01-02", '"2026-03-01"'),
    ("01/02/2006", '"03/01/2026"'),
    ("01/02/2006", '"2026-03-01"'),
    ("Jan 2, 2006", '"Mar 1, 2026"'),
    ("2006-01-02 15:04", '"2026-03-09 23:30"'),
    ("2006-01-02", "name"),
    ("02.01.2006", '"31.12.2025"'),
)


def _fn_exists(g: Gen) -> str:
    return f"exists({g.field()})"


_FUNCTIONS: tuple[Callable[[Gen], str], ...] = (
    _fn_case,
    _fn_case,
    _fn_contains,
    _fn_contains,
    _fn_len,
    _fn_text,
    _fn_email,
    _fn_url,
    _fn_cast,
    _fn_cast,
    _fn_time,
    _fn_time,
    _fn_exists,
)


# -- fixed cases: the issue's table and the docs' rules table -------------------------------------

_DOCS_PROFILE: dict[str, Any] = {
    "name": "Yoda",
    "plan": "pro",
    "visits": 42,
    "ltv": "1,234.50",
    "vip": True,
    "empty": "",
    "tags": ["beta", "b2b"],
    "scores": {"momentum": 80},
    "signup": "2026-02-01T08:30:00Z",
    "url": "https://example.com/blog/1",
    "logins": ["2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z"],
    "nothing": [],
}
_DOCS_INCLUDES = 'FILTER plan == "pro" ALIAS pros; FILTER plan == "free" ALIAS frees'
_DOCS_NOW = "2026-03-10T12:00:00Z"


def fixed_cases() -> list[Case]:
    """The rows of issue 12's table and of docs/filterql.md's rules table, as cases."""
    now = _DOCS_NOW
    issue: list[tuple[str, dict[str, Any]]] = [
        ('FILTER OR (plan == "gold"\n contains(name, "p"))', {"name": "p"}),
        ('FILTER ltv >= "42"', {"ltv": "42"}),
        ('FILTER NOT (email < "x")', {"email": "a@b.c"}),
        ("FILTER 0 <= ltv", {"ltv": "$12"}),
        ("FILTER ltv BETWEEN 1 AND 50", {"ltv": "12"}),
        ('FILTER NOT (visits == "abc")', {"visits": 42}),
        ('FILTER visits CONTAINS "4"', {"visits": 42}),
        ('FILTER signup BETWEEN "now-1y" AND "now"', {"signup": "2025-06-01T00:00:00Z"}),
        ('FILTER logins BETWEEN "now-1y" AND "now+1d"', {"logins": ["2025-06-01T00:00:00Z"]}),
        ('FILTER "now-5d" > logins', {"logins": ["2025-06-01T00:00:00Z"]}),
        ('FILTER logins != "now+3d"', {"logins": []}),
        ("FILTER NOT OR (missing_flag)", {}),
        ('FILTER toint("1e3") == 1000', {}),
    ]
    out: list[Case] = [{"filter": f, "profile": prof, "now": now} for f, prof in issue]
    docs = (ROOT / "docs" / "filterql.md").read_text(encoding="utf-8")
    section = docs[docs.index("## The semantics") : docs.index("### Dates and date math")]
    for line in section.splitlines():
        m = re.match(r"^\| .* \| `(.+)` \| (true|false) \|$", line)
        if m and "NULL" not in m.group(1):  # the NULL rows are a documented difference
            out.append(
                {
                    "filter": "FILTER " + m.group(1),
                    "profile": _DOCS_PROFILE,
                    "now": now,
                    "includes": _DOCS_INCLUDES,
                }
            )
    return out


# -- answers -----------------------------------------------------------------------------------------


def make_cases(seed: int, count: int) -> list[Case]:
    g = Gen(seed)
    return [g.case() for _ in range(count)]


def ask_oracle(oracle: str, cases: list[Case], runs: int = 3) -> list[dict[str, Any] | None]:
    """The oracle's answer per case, asked ``runs`` times: None where the answers differ (Go
    iterates maps in random order, which some qlbridge paths depend on)."""
    lines = "".join(json.dumps(c) + "\n" for c in cases)
    rounds: list[list[dict[str, Any]]] = []
    for _ in range(runs):
        out = subprocess.run([oracle], input=lines, capture_output=True, text=True, check=True)
        answers = [json.loads(x) for x in out.stdout.splitlines()]
        if len(answers) != len(cases):
            raise RuntimeError(f"the oracle answered {len(answers)} of {len(cases)} cases")
        rounds.append(answers)
    stable: list[dict[str, Any] | None] = []
    for per_case in zip(*rounds, strict=True):
        keys = {(a.get("matches"), a.get("ok")) for a in per_case}
        stable.append(per_case[0] if len(keys) == 1 else None)
    return stable


def qlbridge_member(answer: dict[str, Any]) -> bool | None:
    """The oracle's answer as membership: None when qlbridge could not parse the filter, or
    panicked evaluating it (an integer % 0, CONTAINS between two numbers...): no answer to keep."""
    if answer.get("matches") is None:
        return None
    return bool(answer["matches"]) and bool(answer["ok"])


def panicked(answer: dict[str, Any]) -> bool:
    return str(answer.get("error", "")).startswith("panic")


def our_member(case: Case) -> bool | None:
    """Our answer: None when our parser or compiler refuses the filter."""
    from workers.filterql import FilterQLError, compile_filter, compile_set, parse_statements
    from workers.pipeline.profile import Profile
    from workers.timefmt import parse_rfc3339

    try:
        resolve = None
        if case.get("includes"):
            texts = {st.alias or "": st.text for st in parse_statements(case["includes"])}
            compiled = compile_set(texts)
            resolve = compiled.__getitem__
        f = compile_filter(case["filter"], resolve)
    except FilterQLError:
        return None
    fields = {k: v for k, v in case["profile"].items() if v is not None}
    return f.matches(Profile("u", fields=fields), parse_rfc3339(case["now"]))


def difference(case: Case, qlbridge: bool) -> str | None:
    """The documented difference (docs/filterql.md, "Differences from qlbridge") that explains a
    disagreement, found by switching audiencehub's extension off and asking again."""
    from workers.filterql import operators

    if re.search(r"(?i)\bnull\b|\bnil\b", case["filter"]):
        return "x == NULL"
    operators.JSON_DATES = False
    try:
        if our_member(case) == qlbridge:
            return "Dates in JSON"
    finally:
        operators.JSON_DATES = True
    return None


# -- commands ----------------------------------------------------------------------------------------


def _answered(oracle: str, cases: list[Case]) -> tuple[list[tuple[Case, bool]], Counter[str]]:
    """The cases qlbridge answered (parsed, no panic, the same answer every time)."""
    kept: list[tuple[Case, bool]] = []
    dropped: Counter[str] = Counter()
    for case, answer in zip(cases, ask_oracle(oracle, cases), strict=True):
        if answer is None:
            dropped["unstable"] += 1
        elif panicked(answer):
            dropped["panic"] += 1
        elif (member := qlbridge_member(answer)) is None:
            dropped["qlbridge parse error"] += 1
        else:
            kept.append((case, member))
    return kept, dropped


def write(oracle: str) -> None:
    rows: list[Case] = []
    dropped: Counter[str] = Counter()
    unexplained: list[Case] = []
    batches = [("fixed", fixed_cases())] + [
        (str(seed), make_cases(seed, GOLDEN_PER_SEED)) for seed in GOLDEN_SEEDS
    ]
    for source, cases in batches:
        kept, lost = _answered(oracle, cases)
        dropped += lost
        for case, member in kept:
            row = dict(case)
            row["member"] = member
            row["source"] = source
            ours = our_member(case)
            if ours != member:
                why = difference(case, member)
                if why is None:
                    unexplained.append(row)
                    continue
                row["difference"] = why
            rows.append(row)
    for row in unexplained:
        print(
            f"unexplained: qlbridge={row['member']} {row['filter']!r} {json.dumps(row['profile'])}"
        )
    header = {
        "oracle": "lytics/qlbridge (tools/qlbridge-oracle, qlfilter)",
        "commit": ORACLE_COMMIT,
        "seeds": list(GOLDEN_SEEDS),
        "per_seed": GOLDEN_PER_SEED,
        "cases": len(rows),
        "dropped": dict(dropped),
        "member": "qlbridge's answer: matches and ok",
        "regenerate": "python -m tests.filterql.golden.generate write --oracle PATH",
    }
    lines = [json.dumps(header)] + [
        json.dumps(row, separators=(",", ":"), ensure_ascii=False) for row in rows
    ]
    with gzip.GzipFile(GOLDEN, "wb", compresslevel=9, mtime=0) as fh:  # same bytes every time
        fh.write(("\n".join(lines) + "\n").encode("utf-8"))
    print(
        f"wrote {len(rows)} cases to {GOLDEN} (dropped: {dict(dropped)}); "
        f"{len(unexplained)} unexplained disagreements left out"
    )


def measure(oracle: str, seed: int, count: int, show: int) -> None:
    cases = make_cases(seed, count)
    kept, dropped = _answered(oracle, cases)
    both = agree = only_theirs = 0
    reasons: Counter[str] = Counter()
    shown = 0
    for case, theirs in kept:
        ours = our_member(case)
        if ours is None:
            only_theirs += 1
            reasons["only qlbridge parses"] += 1
            continue
        both += 1
        if theirs == ours:
            agree += 1
            continue
        reasons[difference(case, theirs) or "unexplained"] += 1
        if shown < show:
            shown += 1
            print(
                f"qlbridge={theirs} ours={ours} now={case['now']}\n  {case['filter']}\n  "
                f"{json.dumps(case['profile'])}"
                + (f"\n  includes: {case['includes']}" if case.get("includes") else "")
            )
    print(
        f"seed {seed}: {count} cases; qlbridge answered {len(kept)} (left out: {dict(dropped)}); "
        f"both parse {both}; agree {agree} ({100.0 * agree / max(both, 1):.3f} %); "
        f"only qlbridge parses {only_theirs}"
    )
    for reason, n in reasons.most_common():
        print(f"  {n:5d}  {reason}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("command", choices=("write", "measure", "show"))
    ap.add_argument(
        "--oracle", default=os.environ.get("QLFILTER", "/tmp/qlbridge-oracle/out/qlfilter")
    )
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--show", type=int, default=30)
    args = ap.parse_args(argv)
    if args.command == "write":
        write(args.oracle)
    elif args.command == "measure":
        measure(args.oracle, args.seed, args.count, args.show)
    else:
        for case in make_cases(args.seed, args.count):
            print(json.dumps(case))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
