"""Hypothesis strategies for FilterQL: random profiles, random time-dependent filters, token soup.

test_props.py checks next_change and the walker with them; test_explain_props.py checks explain.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.filterql.helpers import DAY, rfc
from workers.filterql import compile_set
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_S, parse_rfc3339

BASE = parse_rfc3339("2026-01-31T12:00:00Z")  # a month end, so calendar date math gets exercised
S = NS_PER_S

# -- random profiles -------------------------------------------------------------------------------

offsets = st.one_of(
    st.integers(min_value=-90 * DAY, max_value=90 * DAY),
    st.integers(min_value=-90, max_value=90).map(lambda d: d * DAY),  # on whole days
    st.integers(min_value=-3 * S, max_value=3 * S),  # around BASE itself
)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    fields: dict[str, Any] = {}
    for name in ("d1", "d2"):
        if draw(st.integers(0, 9)):
            fields[name] = rfc(BASE + draw(offsets))
    if draw(st.booleans()):
        fields["dl"] = [rfc(BASE + draw(offsets)) for _ in range(draw(st.integers(0, 3)))]
    fields["n"] = draw(st.integers(-5, 50))
    fields["s"] = draw(st.sampled_from(["pro", "free", "x"]))
    if draw(st.booleans()):
        fields["flag"] = draw(st.booleans())
    occ: dict[str, list[int]] = {}
    for ev in ("e1", "e2"):
        if draw(st.booleans()):
            occ[ev] = sorted(BASE + draw(offsets) for _ in range(draw(st.integers(0, 5))))
    return Profile(
        "p", fields=fields, occurrences=occ, created=BASE - draw(st.integers(0, 400)) * DAY
    )


# -- random filters --------------------------------------------------------------------------------

units = st.sampled_from(["s", "m", "h", "d", "w", "M", "y"])
field = st.sampled_from(["d1", "d2", "dl", "missing"])
cmp_op = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])


@st.composite
def leaf(draw: st.DrawFn) -> str:
    k = draw(st.integers(0, 40))
    sign = draw(st.sampled_from(["-", "+"]))
    dm = f'"now{sign}{k}{draw(units)}"'
    choice = draw(st.integers(0, 15))
    f, op = draw(field), draw(cmp_op)
    if choice == 0:
        return f"{f} {op} {dm}"
    if choice == 1:
        return f"{dm} {op} {f}"
    if choice == 2:
        a, b = sorted((draw(st.integers(-40, 40)), draw(st.integers(-40, 40))))
        return f'{f} BETWEEN "now{a:+d}{draw(units)}" AND "now{b:+d}d"'
    if choice == 3:
        return (
            f"{draw(st.sampled_from(['e1', 'e2']))} IN (1)"
            if k > 38
            else (
                f"timewindow({draw(st.sampled_from(['e1', 'e2', 'dl']))}, {draw(st.integers(1, 4))}, "
                f"{draw(st.sampled_from(['1', '2', '7', '30', '0.5']))})"
            )
        )
    if choice == 4:
        return f"daysago({f}) {op} {draw(st.integers(-5, 60))}"
    if choice == 5:
        return f"dayofweek() {op} {draw(st.integers(0, 6))}"
    if choice == 6:
        return f"hourofday() IN ({draw(st.integers(0, 23))}, {draw(st.integers(0, 23))})"
    if choice == 7:
        return f"mm() {op} {draw(st.integers(1, 12))}"
    if choice == 8:
        return f"now() {op} {f}"
    if choice == 9:
        return f'_created {op} "now-{k}d"'
    if choice == 10:
        return f"n > {draw(st.integers(0, 40))}"
    if choice == 11:
        return f's == "{draw(st.sampled_from(["pro", "free"]))}"'
    if choice == 12:
        return draw(st.sampled_from(["flag", "EXISTS d1", "INCLUDE recent", "INCLUDE buyer"]))
    if choice == 13:
        return f"todate({f}) {op} todate({dm})"
    if choice == 14:
        return f"now() BETWEEN d1 AND {dm}"
    return f"{f} {op} d2"


def phrases() -> st.SearchStrategy[str]:
    return st.recursive(
        leaf(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: "AND (" + ", ".join(xs) + ")"),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: "OR (" + ", ".join(xs) + ")"),
            inner.map(lambda x: f"NOT ({x})"),
        ),
        max_leaves=5,
    )


INCLUDES = compile_set(
    {"recent": 'FILTER d1 > "now-10d"', "buyer": "FILTER OR (timewindow(e1, 2, 7), n > 30)"}
)


# -- tokens for fuzzing the parser---------------------------------------------------------------------------

TOKENS = [
    "FILTER",
    "AND",
    "OR",
    "NOT",
    "(",
    ")",
    ",",
    ";",
    "EXISTS",
    "IN",
    "NOT IN",
    "INTERSECTS",
    "CONTAINS",
    "LIKE",
    "BETWEEN",
    "INCLUDE",
    "FROM",
    "LIMIT",
    "WITH",
    "ALIAS",
    "*",
    "==",
    "=",
    "!=",
    ">",
    "<=",
    "+",
    "-",
    "/",
    "%",
    "!",
    "&&",
    "||",
    "[",
    "]",
    "true",
    "NULL",
    "x",
    "a.b",
    "`q.r`",
    "'s'",
    '"str"',
    '"now-3d"',
    '"now-3q"',
    "5",
    "-2.5",
    "1e3",
    "tolower(",
    "timewindow(",
    "now()",
    "daysago(",
    "nope(",
    "--c\n",
    "/* c */",
    "\n",
    "match_all",
    "1e308",
    "99999999999999999999",
    '"now-99999999999y"',
    "timewindow(e1, 1, ",
    "dayofweek()",
    "BETWEEN 1 AND",
    "x y",
    "recent",
    "3d42",
]
