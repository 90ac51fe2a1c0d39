"""Compile parsed FilterQL into a tree of closures: the entry points and the walk over the syntax.

``compile_filter`` turns one ``FILTER …`` statement into a :class:`Filter`; ``compile_set``
compiles audiences that INCLUDE each other. The compiler visits each syntax node once, builds the
:class:`CNode` that computes its value (node.py), and gives every phrase that moves with time its
exact next-change searches (next_change.py). Comparisons get fast paths (fastpaths.py), function
calls their time behaviour (calls.py), AND / OR / NOT their qlbridge folding (logic.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from workers.filterql import syntax
from workers.filterql.calls import clock_node, compile_call
from workers.filterql.dates import DateMathError, parse_datemath
from workers.filterql.errors import FilterQLError
from workers.filterql.fastpaths import (
    compare_evaluator,
    contains_evaluator,
    like_evaluator,
    member_evaluator,
)
from workers.filterql.fields import field_reader, ident_roots, simple_field
from workers.filterql.filter import Filter
from workers.filterql.functions import FUNCTIONS
from workers.filterql.glob import PatternTooLarge
from workers.filterql.includes import Resolver, compile_include, compiling
from workers.filterql.logic import compile_logic, compile_not, negation
from workers.filterql.next_change import derive_step, leaf_timing
from workers.filterql.node import BareValue, CNode, Evaluator, Timing, constant
from workers.filterql.operators import EQ, NE, OP_NAMES, arith, between
from workers.filterql.parser import parse_statements
from workers.filterql.syntax import Node, Pos, Statement
from workers.filterql.timing import Clock
from workers.filterql.values import BAD, NULL, Lits, literal_value, truth
from workers.pipeline.profile import Profile

_OP_TEXT = {
    "==": "==",
    "=": "==",
    "!=": "!=",
    "<>": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}


class Compiler:
    """Compiles one statement; collects the fields, events and includes it reads."""

    def __init__(self, statement: Statement, text: str, resolve: Resolver | None) -> None:
        self.statement = statement
        self.text = text
        self.resolve = resolve
        self.fields: set[str] = set()
        self.events: set[str] = set()
        self.includes: set[str] = set()
        self.included: list[Filter] = []
        self.needs: dict[str, int] = {}
        self.depth = 0
        self.chain: tuple[str, ...] = ()

    def error(self, message: str, pos: Pos) -> FilterQLError:
        return FilterQLError(message, line=pos.line, column=pos.column, text=self.text)

    def build(self) -> Filter:
        body = self.statement.filter
        if isinstance(body, syntax.MatchAll) or (
            isinstance(body, syntax.Ident) and body.segments == (("match_all", False),)
        ):
            root = CNode("match_all", "*", body.pos, constant(True), syntax=body)
        else:
            root = self.phrase(body)
        moving = root.timing != Timing.STATIC
        assert not moving or root.next_true_change, "every moving phrase knows its next change"
        for f in self.included:
            self.fields |= f.fields
            self.events |= f.events
            for name, need in f.needs.items():
                self.needs[name] = max(self.needs.get(name, 0), need)
        fields, events = frozenset(self.fields), frozenset(self.events)
        includes = frozenset(self.includes)
        out = Filter(self.statement, root, fields, events, includes, self.depth, self.chain)
        out.needs = self.needs
        return out

    # -- phrases (tri-state) ------------------------------------------------------------------
    def phrase(self, node: Node) -> CNode:
        out: CNode
        if isinstance(node, syntax.Logic):
            out = compile_logic(self, node)
        elif isinstance(node, syntax.Not):
            out = compile_not(self, node)
        elif isinstance(node, syntax.Compare):
            out = self.compare(node)
        elif isinstance(node, syntax.Binary):
            out = self.binary(node)
        elif isinstance(node, syntax.Between):
            out = self.between(node)
        elif isinstance(node, syntax.Exists):
            out = self.exists(node.arg, node.pos)
        elif isinstance(node, syntax.Include):
            out = compile_include(self, node)
        elif isinstance(node, syntax.MatchAll):
            out = CNode("match_all", "*", node.pos, constant(True))
        elif isinstance(node, syntax.Literal):
            bare = literal_value(node.value)
            out = CNode("literal", repr(node.value), node.pos, constant(truth(bare)))
            out.detail = BareValue(bare)
        else:
            inner = self.value(node)
            out = inner if inner.kind in ("timewindow", "phrase") else self.truth_of(inner)
        if out.syntax is None:  # for explain: the source this phrase came from
            out.syntax = node
        return out

    def truth_of(self, inner: CNode) -> CNode:
        """A value used as a phrase: True/False stay; missing is unknown (None), any other value is
        BAD (neither true nor false)."""
        get = inner.evaluate

        def evaluate(p: Profile, now: int) -> Any:
            return truth(get(p, now))

        node = CNode("truth", inner.label, inner.pos, evaluate, (inner,))
        if inner.timing == Timing.CLOCK:
            node.evaluate = constant(BAD)
        elif inner.timing == Timing.STEP:
            leaf_timing(node, (inner,), False)
        return node

    def compare(self, node: syntax.Compare) -> CNode:
        op = OP_NAMES[node.op]
        label = _OP_TEXT[node.op]
        # NULL: "x == NULL" is true when x is missing, "x != NULL" when it is present.
        for this, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, syntax.Literal) and other.value is None:
                inner = self.value(this, time_pos=True)
                evaluate = _is_missing(inner.evaluate, op) if op in (EQ, NE) else constant(False)
                out = CNode("compare", label, node.pos, evaluate, (inner,))
                if inner.timing == Timing.STEP:
                    leaf_timing(out, (inner,), False)
                return out
        left = self.value(node.left, time_pos=True)
        right = self.value(node.right, time_pos=True)
        self.check_moving((left, right), node.pos)
        evaluate = compare_evaluator(op, left, right, node.left)
        out = CNode("compare", label, node.pos, evaluate, (left, right))
        if left.timing or right.timing:
            leaf_timing(out, (left, right), True)
        return out

    def check_moving(self, operands: tuple[CNode, ...], pos: Pos) -> None:
        """A moving time may meet static values or other clocks, not other moving values."""
        timings = {o.timing for o in operands}
        if Timing.CLOCK in timings and Timing.STEP in timings:
            raise self.error(
                "a moving time (now(), date math) cannot be compared with another value that "
                "changes with time",
                pos,
            )

    def binary(self, node: syntax.Binary) -> CNode:
        op = node.op
        left = self.value(node.left)
        right = self.value(node.right)
        if Timing.CLOCK in (left.timing, right.timing):
            raise self.error(
                f"{op} cannot use a moving time (now(), date math); compare it instead", node.pos
            )
        thresholdable = False
        if op in ("IN", "INTERSECTS"):
            evaluate = member_evaluator(left, right, node.left, node.right)
            thresholdable = True
        elif op == "CONTAINS":
            evaluate = contains_evaluator(left, right, node.left, node.right)
        else:
            try:
                evaluate = like_evaluator(left, right, node.left, node.right)
            except PatternTooLarge as exc:
                raise self.error(str(exc), node.right.pos) from None
        out = CNode(op.lower(), op, node.pos, evaluate, (left, right), syntax=node)
        if left.timing or right.timing:
            leaf_timing(out, (left, right), thresholdable)
        return negation(out, node.pos, f"NOT {op}") if node.negated else out

    def between(self, node: syntax.Between) -> CNode:
        operands = tuple(self.value(n, time_pos=True) for n in (node.arg, node.lo, node.hi))
        self.check_moving(operands, node.pos)
        get_arg, get_lo, get_hi = (o.evaluate for o in operands)

        def evaluate(p: Profile, now: int) -> Any:
            return between(get_arg(p, now), get_lo(p, now), get_hi(p, now))

        out = CNode("between", "BETWEEN", node.pos, evaluate, operands, syntax=node)
        if any(o.timing for o in operands):
            leaf_timing(out, operands, True)
        return negation(out, node.pos, "NOT BETWEEN") if node.negated else out

    def exists(self, arg: Node, pos: Pos, call: bool = False) -> CNode:
        """``EXISTS x``: any present value. ``exists(x)`` (``call``) is qlbridge's builtin, which
        also says false for a map that does not hold only ints."""
        inner = self.value(arg)
        if inner.timing == Timing.CLOCK:
            return CNode("exists", "EXISTS", pos, constant(True), (inner,))
        get = inner.evaluate
        evaluate: Evaluator
        name = simple_field(arg)
        if call:
            fn = FUNCTIONS["exists"].impl

            def evaluate(p: Profile, now: int) -> Any:
                return fn(get(p, now))

        elif name is not None:

            def evaluate(p: Profile, now: int) -> Any:
                return p.fields.get(name) is not None

        else:

            def evaluate(p: Profile, now: int) -> Any:
                v = get(p, now)
                return v is not None and v is not NULL

        out = CNode("exists", "EXISTS", pos, evaluate, (inner,))
        if inner.timing == Timing.STEP:
            leaf_timing(out, (inner,), False)
        return out

    # -- values -------------------------------------------------------------------------------
    def value(self, node: Node, time_pos: bool = False) -> CNode:
        """A value. ``time_pos``: where a date may stand, so a ``"now-7d"`` text is date math."""
        out: CNode
        if isinstance(node, syntax.Literal):
            v = node.value
            moving: tuple[int, int] | None = None
            if time_pos and isinstance(v, str):
                try:
                    moving = parse_datemath(v)
                except DateMathError as exc:
                    raise self.error(str(exc), node.pos) from None
            if moving is not None:
                out = clock_node(Clock(moving[0], moving[1]), repr(v), node.pos, text=v)
            else:
                out = CNode("literal", repr(v), node.pos, constant(literal_value(v)))
        elif isinstance(node, syntax.Ident):
            self.fields |= ident_roots(node)
            out = CNode("field", node.text, node.pos, field_reader(node))
        elif isinstance(node, syntax.ListLit):
            out = self.list_value(node)
        elif isinstance(node, syntax.Call):
            out = compile_call(self, node)
        elif isinstance(node, syntax.Arith):
            out = self.arith(node)
        elif isinstance(node, syntax.MatchAll):
            raise self.error("'*' (match all) can only be the whole filter", node.pos)
        elif isinstance(node, syntax.PHRASES):
            return self.phrase(node)
        else:
            raise FilterQLError(f"cannot compile {type(node).__name__}", text=self.text)
        if out.syntax is None:  # for explain: the source this value came from
            out.syntax = node
        return out

    def list_value(self, node: syntax.ListLit) -> CNode:
        """A list written in the filter: a Lits (qlbridge's SliceValue). In ``[...]`` every number is
        a float, as qlbridge's ValueArray reads them."""
        items = tuple(self.value(i) for i in node.items)
        for it in items:
            if it.timing != Timing.STATIC:
                raise self.error("a list cannot hold values that change with time", it.pos)
        if all(isinstance(i, syntax.Literal) for i in node.items):
            const = Lits(
                literal_value(i.value) for i in node.items if isinstance(i, syntax.Literal)
            )
            if node.bracket:
                const = Lits(float(x) if x.__class__ is int else x for x in const)
            return CNode("list", "(…)", node.pos, constant(const), items)
        getters = tuple(i.evaluate for i in items)

        def evaluate(p: Profile, now: int) -> Any:
            return Lits(f(p, now) for f in getters)

        return CNode("list", "(…)", node.pos, evaluate, items)

    def arith(self, node: syntax.Arith) -> CNode:
        left, right = self.value(node.left), self.value(node.right)
        if Timing.CLOCK in (left.timing, right.timing):
            raise self.error(
                "arithmetic on a moving time (now(), date math) is not supported", node.pos
            )
        get_left, get_right, op = left.evaluate, right.evaluate, node.op

        def evaluate(p: Profile, now: int) -> Any:
            return arith(op, get_left(p, now), get_right(p, now))

        out = CNode("arith", op, node.pos, evaluate, (left, right))
        derive_step(out, (left, right))
        return out


def _is_missing(get: Evaluator, op: int) -> Evaluator:
    """``x == NULL``: x is missing; ``x != NULL``: x is present."""
    want_missing = op == EQ

    def evaluate(p: Profile, now: int) -> Any:
        return (get(p, now) is None) is want_missing

    return evaluate


# -- public entry points --------------------------------------------------------------------------

_MIN_RECURSION = 10_000


def _room_to_recurse() -> None:
    """Compiling follows INCLUDE chains (up to 100 audiences deep) and nested phrases by recursion;
    make sure Python allows it even when called from an already deep stack."""
    if sys.getrecursionlimit() < _MIN_RECURSION:
        sys.setrecursionlimit(_MIN_RECURSION)


def compile_statement(statement: Statement, text: str, resolve: Resolver | None = None) -> Filter:
    """Compile one parsed statement; ``text`` is its whole source (for error positions)."""
    _room_to_recurse()
    try:
        return Compiler(statement, text, resolve).build()
    except RecursionError:
        raise FilterQLError("the filter is nested too deeply", text=text) from None


def compile_filter(text: str, resolve: Resolver | None = None) -> Filter:
    """Compile exactly one FILTER statement.

    ``resolve(slug)`` returns the compiled filter of an INCLUDEd audience (and raises
    FilterQLError for an unknown one); without it, INCLUDE is a compile error naming the slug.
    """
    statements = parse_statements(text)
    if len(statements) != 1:
        st = statements[1]
        raise FilterQLError(
            f"expected one FILTER statement, found {len(statements)}",
            line=st.pos.line,
            column=st.pos.column,
            text=text,
        )
    return compile_statement(statements[0], text, resolve)


def compile_set(texts: Mapping[str, str]) -> dict[str, Filter]:
    """Compile several audiences keyed by slug, resolving INCLUDE among them.

    Cycles and include chains deeper than 100 are refused with a FilterQLError naming the path.
    Slugs are matched exactly first, then ignoring case.
    """
    done: dict[str, Filter] = {}
    lower = {k.lower(): k for k in texts}

    def key_of(slug: str) -> str | None:
        if slug in texts:
            return slug
        return lower.get(slug.lower())

    def build(key: str) -> Filter:
        text = texts[key]
        statements = parse_statements(text)
        if len(statements) != 1:
            raise FilterQLError(
                f"audience {key}: expected one FILTER statement, found {len(statements)}", text=text
            )
        return compile_statement(statements[0], text, resolve)

    def resolve(slug: str) -> Filter:
        key = key_of(slug)
        if key is None:
            raise FilterQLError(f"unknown audience {slug!r}")
        if key not in done:
            done[key] = build(key)
        return done[key]

    for key in texts:
        if key in done:
            continue
        try:
            with compiling(key):
                done[key] = build(key)
        except FilterQLError as exc:
            if not exc.message.startswith(f"audience {key}"):
                exc.message = f"audience {key}: {exc.message}"
                exc.args = (str(exc),)
            raise
    return {k: done[k] for k in texts}
