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

from workers.filterql import dates, syntax
from workers.filterql.dates import parse_datemath
from workers.filterql.fields import resolve_path
from workers.filterql.functions import FUNCTIONS, daysago_of, time_of
from workers.filterql.operators import (
    CONTAINS,
    EQ,
    IN,
    LIKE,
    NE,
    OP_NAMES,
    arith,
    between,
    binop,
    infix,
)
from workers.filterql.syntax import Node, Statement, peel_not
from workers.filterql.values import NULL, DateMath, Lits, Time, literal_value, to_time, tri, truth
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY


class Walker:
    """Evaluate statements by walking their syntax tree; ``includes`` maps slugs to statements."""

    def __init__(self, includes: Mapping[str, Statement] | None = None) -> None:
        self.includes = {k.lower(): v for k, v in (includes or {}).items()}

    def matches(self, statement: Statement, profile: Profile, now: int) -> bool:
        return self.root(statement, profile, now) is True

    def root(self, statement: Statement, profile: Profile, now: int) -> Any:
        body = statement.filter
        if isinstance(body, syntax.MatchAll) or (
            isinstance(body, syntax.Ident) and body.segments == (("match_all", False),)
        ):
            return True
        return self.phrase(body, profile, now)

    # -- phrases ------------------------------------------------------------------------------
    def phrase(self, node: Node, p: Profile, now: int) -> Any:
        """True, False, None (not ok), or BAD / NULL (ok, but not a boolean)."""
        if isinstance(node, syntax.Logic):
            if not node.infix and len(node.args) == 1:
                return self.phrase(node.args[0], p, now)
            if node.infix:
                parts = [self.infix_part(a, p, now) for a in node.args]
                acc = parts[0]
                for i, r in enumerate(parts[1:]):
                    acc = infix(node.op == "AND", node.symbols[i], acc, r)
                return acc
            results = [self.phrase(a, p, now) for a in node.args]
            if node.op == "AND":
                for r in results:
                    if r is not True:
                        return False if r is False else None
                return True
            return any(r is True for r in results)
        if isinstance(node, syntax.Not):
            core, flips = peel_not(node)
            if isinstance(core, syntax.Include):
                inner = tri(self.include(core, p, now))
                return inner if flips % 2 == 0 else inner is not True
            r = self.phrase(node.arg, p, now)
            return False if r is True else True if r is False else None
        if isinstance(node, syntax.Compare):
            return self.compare(node, p, now)
        if isinstance(node, syntax.Binary):
            op = {"IN": IN, "INTERSECTS": IN, "CONTAINS": CONTAINS, "LIKE": LIKE}[node.op]
            r = binop(op, self.value(node.left, p, now), self.value(node.right, p, now))
            if node.negated:
                return False if r is True else True if r is False else None
            return r
        if isinstance(node, syntax.Between):
            b = between(
                self.value(node.arg, p, now, True),
                self.value(node.lo, p, now, True),
                self.value(node.hi, p, now, True),
            )
            if b is None:
                return None
            return not b if node.negated else b
        if isinstance(node, syntax.Exists):
            v = self.value(node.arg, p, now)
            return v is not None and v is not NULL
        if isinstance(node, syntax.Include):
            return tri(self.include(node, p, now))
        if isinstance(node, syntax.MatchAll):
            return True
        if isinstance(node, syntax.Literal):
            return truth(literal_value(node.value))
        v = self.value(node, p, now)
        if isinstance(node, syntax.Call) and FUNCTIONS[node.name].kind in ("exists", "timewindow"):
            return v
        return truth(v)

    def infix_part(self, node: Node, p: Profile, now: int) -> Any:
        """A part of infix AND / OR: a phrase's answer, or a bare value itself."""
        if isinstance(node, syntax.Literal):
            return literal_value(node.value)
        if isinstance(node, (syntax.Ident, syntax.Arith, syntax.ListLit)) or (
            isinstance(node, syntax.Call)
            and FUNCTIONS[node.name].kind not in ("exists", "timewindow")
        ):
            return self.value(node, p, now)
        return self.phrase(node, p, now)

    def include(self, node: syntax.Include, p: Profile, now: int) -> Any:
        return self.root(self.includes[node.name.lower()], p, now)

    def compare(self, node: syntax.Compare, p: Profile, now: int) -> Any:
        op = OP_NAMES[node.op]
        for this, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, syntax.Literal) and other.value is None:
                missing = self.value(this, p, now, True) is None
                return missing if op == EQ else (not missing if op == NE else False)
        return binop(op, self.value(node.left, p, now, True), self.value(node.right, p, now, True))

    # -- values -------------------------------------------------------------------------------
    def value(self, node: Node, p: Profile, now: int, time_pos: bool = False) -> Any:
        if isinstance(node, syntax.Literal):
            v = node.value
            if time_pos and isinstance(v, str):
                dm = parse_datemath(v)
                if dm is not None:
                    return DateMath(dates.add_months(now, dm[1]) + dm[0], v)
            return literal_value(v)
        if isinstance(node, syntax.Ident):
            return self.ident(node, p)
        if isinstance(node, syntax.ListLit):
            items = [self.value(i, p, now) for i in node.items]
            if node.bracket:
                items = [float(x) if x.__class__ is int else x for x in items]
            return Lits(items)
        if isinstance(node, syntax.Arith):
            return arith(node.op, self.value(node.left, p, now), self.value(node.right, p, now))
        if isinstance(node, syntax.Call):
            return self.call(node, p, now)
        return self.phrase(node, p, now)

    def ident(self, node: syntax.Ident, p: Profile) -> Any:
        segs = node.segments
        if len(segs) == 1 and not segs[0][1] and segs[0][0] in ("_created", "_modified"):
            ns = p.created if segs[0][0] == "_created" else p.modified
            return Time(ns) if ns else None
        return resolve_path(p.fields, tuple(s for s, _q in segs), tuple(q for _s, q in segs), 0)

    def call(self, node: syntax.Call, p: Profile, now: int) -> Any:
        fn = FUNCTIONS[node.name]
        if fn.kind == "now":
            return Time(now)
        if fn.kind == "timewindow":
            what, n_node, d_node = node.args
            name = what.name if isinstance(what, syntax.Ident) else str(getattr(what, "value", ""))
            need = math.ceil(getattr(n_node, "value", 1))
            window = round(getattr(d_node, "value", 1) * NS_PER_DAY)
            times = p.times(name)
            if times is None:
                raw = (
                    self.value(what, p, now)
                    if isinstance(what, syntax.Ident)
                    else p.fields.get(name)
                )
                items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
                times = sorted(
                    t for t in (to_time(e) for e in items if e is not None) if t is not None
                )
            return sum(1 for t in times if now < t + window) >= need
        if fn.kind == "exists":
            return fn.impl(self.value(node.args[0], p, now))
        if fn.kind == "calendar":
            arg = self.value(node.args[0], p, now) if node.args else Time(now)
            return fn.impl(arg)
        if fn.kind == "daysago":
            then = time_of(self.value(node.args[0], p, now, True))
            return None if then is None else daysago_of(then, now)
        if fn.kind == "todate" and len(node.args) == 1:
            v = self.value(node.args[0], p, now, True)
            return Time(v.ns) if isinstance(v, DateMath) else fn.impl(v)
        return fn.impl(*[self.value(a, p, now) for a in node.args])
