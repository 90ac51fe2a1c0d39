"""Evaluators for comparisons, IN, CONTAINS and LIKE, with fast paths for the common shapes.

``plan == "pro"``, ``visits > 10``, ``last_seen > "now-7d"``, ``country IN ("US", "CA")`` are most
of what audiences ask. When one side is a plain field and the other a constant, the evaluator reads
the field itself and answers the usual types inline, falling back to the full rules of
operators.py for anything else, so the answers are the same, only sooner (bench/filterql.py).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from workers.filterql import dates
from workers.filterql.dates import rfc3339_ns
from workers.filterql.fields import field_value, simple_field
from workers.filterql.glob import compile_like
from workers.filterql.node import CNode, Evaluator, Timing
from workers.filterql.operators import CONTAINS, EQ, GE, GT, IN, LE, LIKE, LT, NE, binop
from workers.filterql.syntax import ListLit, Literal, Node
from workers.filterql.values import DateMath, str_to_number
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_S

_OPERATORS: dict[int, Callable[[Any, Any], bool]] = {
    EQ: operator.eq,
    NE: operator.ne,
    LT: operator.lt,
    LE: operator.le,
    GT: operator.gt,
    GE: operator.ge,
}
_NO_PROFILE = Profile("")
_UNSEEN: Any = object()


def plain_text(s: str) -> bool:
    """A string compared as plain text only: not a number and not a date."""
    return str_to_number(s) is None and dates.parse_date(s) is None


def is_number(v: Any) -> bool:
    return v.__class__ is int or v.__class__ is float


def literal_of(node: CNode) -> Any:
    """The constant a literal CNode evaluates to."""
    return node.evaluate(_NO_PROFILE, 0)


def binop_evaluator(op: int, left: CNode, right: CNode) -> Evaluator:
    """``left op right`` by the full rules, no shortcut."""
    get_left, get_right = left.evaluate, right.evaluate

    def evaluate(p: Profile, now: int) -> Any:
        return binop(op, get_left(p, now), get_right(p, now))

    return evaluate


def compare_evaluator(op: int, left: CNode, right: CNode, left_node: Node) -> Evaluator:
    """``left op right`` (operand order kept: qlbridge's rules are not symmetric), with fast paths
    for a field against a number, a plain text, or date math."""
    field = simple_field(left_node)
    if left.timing == Timing.STATIC and right.kind == "literal":
        lit = literal_of(right)
        if is_number(lit):
            return _number(op, lit, field, left.evaluate)
        if lit.__class__ is str and op in (EQ, NE) and plain_text(lit):
            return _text(op == EQ, lit, field, left.evaluate)
    clock = right.clock
    if (
        left.timing == Timing.STATIC
        and right.timing == Timing.CLOCK
        and clock is not None
        and not clock.months
        and right.detail is not None
        and hasattr(right.detail, "text")
    ):
        return _date(op, clock.fixed, right.detail.text, field, left.evaluate)
    return binop_evaluator(op, left, right)


def _number(op: int, lit: Any, field: str | None, get: Evaluator) -> Evaluator:
    opf = _OPERATORS[op]
    ne = op == NE
    if field is not None:

        def evaluate_field(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            c = v.__class__
            if c is int or c is float:
                return opf(v, lit)
            if v is None:
                return ne
            return binop(op, field_value(v), lit)

        return evaluate_field

    def evaluate(p: Profile, now: int) -> Any:
        v = get(p, now)
        c = v.__class__
        if c is int or c is float:
            return opf(v, lit)
        return binop(op, v, lit)

    return evaluate


def _text(eq: bool, lit: str, field: str | None, get: Evaluator) -> Evaluator:
    """``x == "text"`` where the text is neither a number nor a date."""
    op = EQ if eq else NE
    if field is not None:

        def evaluate_field(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str:
                if v == lit:
                    return eq
                return None if rfc3339_ns(v) is not None else not eq
            if v is None:
                return not eq
            return binop(op, field_value(v), lit)

        return evaluate_field

    def evaluate(p: Profile, now: int) -> Any:
        v = get(p, now)
        if v.__class__ is str:
            return (v == lit) is eq
        return binop(op, v, lit)

    return evaluate


def _date(op: int, fixed: int, text: str, field: str | None, get: Evaluator) -> Evaluator:
    """``x op "now-7d"`` (no months): a date field at whole seconds."""
    opf = _OPERATORS[op]
    ne = op == NE
    rfc = dates._RFC_CACHE
    s = NS_PER_S

    def decide(v: Any, now: int) -> Any:
        if v is None:
            return ne
        return binop(op, v, DateMath(now + fixed, text))

    if field is not None:

        def evaluate_field(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str:
                t = rfc.get(v)
                if t is not None:
                    return opf(t // s, (now + fixed) // s)
            return decide(field_value(v), now)

        return evaluate_field

    def evaluate(p: Profile, now: int) -> Any:
        return decide(get(p, now), now)

    return evaluate


def member_evaluator(left: CNode, right: CNode, left_node: Node, right_node: Node) -> Evaluator:
    """``x IN (…)`` / ``x INTERSECTS (…)``: a set lookup when the list is plain texts."""
    field = simple_field(left_node)
    if isinstance(right_node, ListLit) and right.kind == "list" and not left.timing:
        literal = all(isinstance(i, Literal) for i in right_node.items)
        values = literal_of(right) if literal else None
        if values is not None and all(v.__class__ is str and plain_text(v) for v in values):
            texts = frozenset(values)
            get = left.evaluate
            if field is not None:

                def evaluate_field(p: Profile, now: int) -> Any:
                    v = p.fields.get(field)
                    if v.__class__ is str:
                        if v in texts:
                            return True
                        return None if rfc3339_ns(v) is not None else False
                    if v is None:
                        return False
                    return binop(IN, field_value(v), values)

                return evaluate_field

            def evaluate(p: Profile, now: int) -> Any:
                v = get(p, now)
                if v.__class__ is str:
                    return v in texts
                return binop(IN, v, values)

            return evaluate
    return binop_evaluator(IN, left, right)


def contains_evaluator(left: CNode, right: CNode, left_node: Node, right_node: Node) -> Evaluator:
    """``x CONTAINS "text"``: a substring test on a plain text field."""
    field = simple_field(left_node)
    if isinstance(right_node, Literal) and isinstance(right_node.value, str) and field is not None:
        sub = right_node.value
        rfc = dates._RFC_CACHE

        def evaluate_field(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str and rfc.get(v, _UNSEEN) is None:
                return sub in v
            return binop(CONTAINS, field_value(v), sub)

        return evaluate_field
    return binop_evaluator(CONTAINS, left, right)


def like_evaluator(left: CNode, right: CNode, left_node: Node, right_node: Node) -> Evaluator:
    """``x LIKE "pattern"``: the pattern compiled once (glob.py; PatternTooLarge is the
    compiler's to report)."""
    field = simple_field(left_node)
    if isinstance(right_node, Literal) and isinstance(right_node.value, str):
        pattern = right_node.value
        match = compile_like(pattern).match
        if field is not None and not left.timing:

            def evaluate_field(p: Profile, now: int) -> Any:
                v = p.fields.get(field)
                if v.__class__ is str and rfc3339_ns(v) is None:
                    got = match(v)
                    if got is not None:
                        return got
                if v is None:
                    return False
                return binop(LIKE, field_value(v), pattern)

            return evaluate_field
    return binop_evaluator(LIKE, left, right)
