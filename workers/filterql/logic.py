"""AND, OR and NOT over tri-state phrases, folded as qlbridge folds them, with their next changes.

A group ``AND (a, b)`` is decided by its first part that is not true (false, or unknown); infix
``a AND b`` is unknown only when every part is, else false unless all hold, and reads a bare value
itself rather than its truth; OR is true if any part is (unknowns count as false). NOT keeps
unknown unknown, except over an INCLUDE, where it flips the INCLUDE's own negation as qlbridge does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.filterql.includes import compile_include
from workers.filterql.next_change import phrase_step, settling, stepping_through
from workers.filterql.node import BareValue, CNode, Evaluator, Timing, constant
from workers.filterql.operators import infix
from workers.filterql.syntax import Include, Logic, Not, Pos, peel_not
from workers.pipeline.profile import Profile

if TYPE_CHECKING:
    from workers.filterql.compiler import Compiler


def compile_logic(c: Compiler, node: Logic) -> CNode:
    """AND / OR. A group of one is its member (qlbridge collapses it)."""
    if not node.infix and len(node.args) == 1:
        return c.phrase(node.args[0])
    kids = tuple(c.phrase(a) for a in node.args)
    evaluators = tuple(k.evaluate for k in kids)
    moving = any(k.timing for k in kids)
    if node.infix:  # qlbridge's evalBinary sees a bare value itself, not its truth
        bare = tuple(_bare(k) for k in kids)
        evaluate = _infix(bare, node.op == "AND", node.symbols)
    else:
        evaluate = _and(evaluators) if node.op == "AND" else _or(evaluators)
    timing = Timing.STEP if moving else Timing.STATIC
    out = CNode(node.op.lower(), node.op, node.pos, evaluate, kids, timing)
    if moving:
        if node.infix:
            out.next_true_change = stepping_through(evaluate, kids, True)
            out.next_false_change = stepping_through(evaluate, kids, False)
        elif node.op == "AND":
            out.next_true_change = settling(evaluate, kids, all_needed=True)
            out.next_false_change = stepping_through(evaluate, kids, False)
        else:
            out.next_true_change = out.next_false_change = settling(
                evaluate, kids, all_needed=False
            )
        phrase_step(out)
    return out


def compile_not(c: Compiler, node: Not) -> CNode:
    """NOT as qlbridge reads it: over an INCLUDE (through single-member groups, which are their
    member) it flips the INCLUDE's own negation; over anything else it negates the value."""
    core, flips = peel_not(node)
    if not isinstance(core, Include):
        return negation(c.phrase(node.arg), node.pos, "NOT")
    inc = compile_include(c, core)
    inc.syntax = core
    if flips % 2 == 0:
        return inc
    get = inc.evaluate

    def evaluate(p: Profile, now: int) -> Any:
        return get(p, now) is not True

    out = CNode("not", "NOT", node.pos, evaluate, (inc,), inc.timing)
    if inc.timing:
        out.next_true_change = out.next_false_change = inc.next_true_change
        out.next_possible_change = inc.next_possible_change
        out.steps_per_cycle = inc.steps_per_cycle
    return out


def negation(inner: CNode, pos: Pos, label: str) -> CNode:
    """NOT of a phrase: true and false swap, unknown stays (so do its two next changes)."""
    get = inner.evaluate

    def evaluate(p: Profile, now: int) -> Any:
        v = get(p, now)
        if v is True:
            return False
        return True if v is False else None

    node = CNode("not", label, pos, evaluate, (inner,), inner.timing)
    if inner.timing:
        node.next_true_change = inner.next_false_change
        node.next_false_change = inner.next_true_change
        node.next_possible_change = inner.next_possible_change
        node.steps_per_cycle = inner.steps_per_cycle
    return node


def _and(evaluators: tuple[Evaluator, ...]) -> Evaluator:
    """A group AND, as qlbridge's ``walkBoolean``: the first part that is not true decides (false,
    or unknown)."""
    if len(evaluators) == 2:
        a, b = evaluators

        def evaluate2(p: Profile, now: int) -> Any:
            x = a(p, now)
            if x is not True:
                return False if x is False else None
            y = b(p, now)
            return y if y is True or y is False else None

        return evaluate2

    def evaluate(p: Profile, now: int) -> Any:
        for f in evaluators:
            x = f(p, now)
            if x is not True:
                return False if x is False else None
        return True

    return evaluate


def _or(evaluators: tuple[Evaluator, ...]) -> Evaluator:
    """A group OR: true if any part is; unknown parts count as false."""

    def evaluate(p: Profile, now: int) -> Any:
        return any(f(p, now) is True for f in evaluators)

    return evaluate


def _bare(k: CNode) -> Evaluator:
    """What infix AND / OR reads of a part: a bare value itself, else the phrase's answer."""
    if k.kind == "truth":
        return k.children[0].evaluate
    if k.kind == "literal" and isinstance(k.detail, BareValue):
        return constant(k.detail.value)
    return k.evaluate


def _infix(evaluators: tuple[Evaluator, ...], is_and: bool, symbols: tuple[bool, ...]) -> Evaluator:
    """Infix ``a AND b`` / ``a OR b`` (``&&``, ``||``), folded from the left as qlbridge's
    ``evalBinary`` does; ``symbols[i]`` tells ``&&`` from ``AND`` before part i + 1."""

    def evaluate(p: Profile, now: int) -> Any:
        acc = evaluators[0](p, now)
        for i in range(1, len(evaluators)):
            acc = infix(is_and, symbols[i - 1], acc, evaluators[i](p, now))
        return acc

    return evaluate
