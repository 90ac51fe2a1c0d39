"""A plain AST-walking evaluator: the slow, obvious reading of a filter.

It interprets the parsed statement afresh for every profile (no closures, no fast paths, no
time analysis). Tests use it as the oracle the compiled filters must agree with, and the benchmark
measures how much compiling buys over it. It shares only the value rules (values.py) and the
function bodies with the compiler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from workers.filterql import dates
from workers.filterql.dates import parse_datemath
from workers.filterql.functions import FUNCTIONS, daysago_of, time_of
from workers.filterql.syntax import (
    Arith,
    Between,
    Binary,
    Call,
    Compare,
    Exists,
    Ident,
    Include,
    ListLit,
    Literal,
    Logic,
    MatchAll,
    Node,
    Not,
    Statement,
)
from workers.filterql.values import (
    EQ,
    NE,
    OP_NAMES,
    Time,
    arith,
    between,
    compare,
    contains,
    like,
    member,
    to_time,
)
from workers.profile import Profile
from workers.timefmt import NS_PER_DAY


class Walker:
    """Evaluate statements by walking their syntax tree; ``includes`` maps slugs to statements."""

    def __init__(self, includes: Mapping[str, Statement] | None = None) -> None:
        self.includes = {k.lower(): v for k, v in (includes or {}).items()}

    def matches(self, statement: Statement, profile: Profile, now: int) -> bool:
        body = statement.filter
        if isinstance(body, MatchAll) or (
            isinstance(body, Ident) and body.segments == (("match_all", False),)
        ):
            return True
        return self.phrase(body, profile, now) is True

    # -- phrases ------------------------------------------------------------------------------
    def phrase(self, node: Node, p: Profile, now: int) -> bool | None:
        if isinstance(node, Logic):
            results = [self.phrase(a, p, now) for a in node.args]
            if node.op == "AND":
                if any(r is False for r in results):
                    return False
                return None if any(r is None for r in results) else True
            return any(r is True for r in results)
        if isinstance(node, Not):
            r = self.phrase(node.arg, p, now)
            return None if r is None else not r
        if isinstance(node, Compare):
            return self.compare(node, p, now)
        if isinstance(node, Binary):
            ok: bool | None
            if node.op in ("IN", "INTERSECTS"):
                ok = member(self.value(node.left, p, now), self.value(node.right, p, now))
            elif node.op == "CONTAINS":
                ok = contains(self.value(node.left, p, now), self.value(node.right, p, now))
            else:
                ok = like(self.value(node.left, p, now), self.value(node.right, p, now))
            if ok is None:
                return None
            return not ok if node.negated else ok
        if isinstance(node, Between):
            r = between(
                self.value(node.arg, p, now, True),
                self.value(node.lo, p, now, True),
                self.value(node.hi, p, now, True),
            )
            if r is None:
                return None
            return not r if node.negated else r
        if isinstance(node, Exists):
            return self.value(node.arg, p, now) is not None
        if isinstance(node, Include):
            return self.matches(self.includes[node.name.lower()], p, now)
        if isinstance(node, MatchAll):
            return True
        v = self.value(node, p, now)
        return v if v is True or v is False else None

    def compare(self, node: Compare, p: Profile, now: int) -> bool:
        op = OP_NAMES[node.op]
        for this, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, Literal) and other.value is None:
                missing = self.value(this, p, now, True) is None
                return missing if op == EQ else (not missing if op == NE else False)
        a = self.value(node.left, p, now, True)
        b = self.value(node.right, p, now, True)
        if a is None or b is None:
            return op == NE and (a is not None or b is not None)
        return compare(op, a, b)

    # -- values -------------------------------------------------------------------------------
    def value(self, node: Node, p: Profile, now: int, time_pos: bool = False) -> Any:
        if isinstance(node, Literal):
            v = node.value
            if time_pos and isinstance(v, str):
                dm = parse_datemath(v)
                if dm is not None:
                    return Time(dates.add_months(now, dm[1]) + dm[0])
            return v
        if isinstance(node, Ident):
            return self.ident(node, p)
        if isinstance(node, ListLit):
            return [self.value(i, p, now) for i in node.items]
        if isinstance(node, Arith):
            return arith(node.op, self.value(node.left, p, now), self.value(node.right, p, now))
        if isinstance(node, Call):
            return self.call(node, p, now)
        return self.phrase(node, p, now)

    def ident(self, node: Ident, p: Profile) -> Any:
        segs = node.segments
        if len(segs) == 1 and not segs[0][1] and segs[0][0] in ("_created", "_modified"):
            ns = p.created if segs[0][0] == "_created" else p.modified
            return Time(ns) if ns else None
        return _lookup(p.fields, [s for s, _q in segs], [q for _s, q in segs])

    def call(self, node: Call, p: Profile, now: int) -> Any:
        fn = FUNCTIONS[node.name]
        if fn.kind == "now":
            return Time(now)
        if fn.kind == "timewindow":
            what, n_node, d_node = node.args
            name = what.name if isinstance(what, Ident) else str(getattr(what, "value", ""))
            need = math.ceil(getattr(n_node, "value", 1))
            window = round(getattr(d_node, "value", 1) * NS_PER_DAY)
            times = p.occurrences.get(name)
            if times is None:
                raw = self.value(what, p, now) if isinstance(what, Ident) else p.fields.get(name)
                items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
                times = sorted(
                    t for t in (to_time(e) for e in items if e is not None) if t is not None
                )
            return sum(1 for t in times if now < t + window) >= need
        if fn.kind == "exists":
            return self.value(node.args[0], p, now) is not None
        if fn.kind == "calendar":
            arg = self.value(node.args[0], p, now, True) if node.args else Time(now)
            return fn.impl(arg)
        if fn.kind == "daysago":
            then = time_of(self.value(node.args[0], p, now, True))
            return None if then is None else daysago_of(then, now)
        if fn.kind == "todate" and len(node.args) == 1:
            return fn.impl(self.value(node.args[0], p, now, True))
        return fn.impl(*[self.value(a, p, now) for a in node.args])


def _lookup(d: Any, texts: list[str], quoted: list[bool]) -> Any:
    """Follow a dotted path through maps, trying longer dotted keys first."""
    if not texts:
        return d
    if not isinstance(d, dict):
        return None
    if quoted[0]:
        v = d.get(texts[0])
        return None if v is None else _lookup(v, texts[1:], quoted[1:])
    run = 0
    while run < len(texts) and not quoted[run]:
        run += 1
    for k in range(run, 0, -1):
        v = d.get(".".join(texts[:k]))
        if v is not None:
            r = _lookup(v, texts[k:], quoted[k:])
            if r is not None:
                return r
    return None
