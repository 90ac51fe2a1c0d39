"""When a compiled phrase next changes with no new data: exact searches over candidate instants.

A leaf that reads moving values changes only where a clock crosses a value (found by arithmetic)
or where a stepping value may step, so trying those candidates in order finds its first real
change. A parent steps from one child change to the next, and AND / OR settle at once when every
child agrees. Nested searches share one budget of candidates; a search that spends it answers with
an earlier "re-check" instant, before which nothing flips.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from workers.filterql import dates
from workers.filterql.node import CNode, Evaluator, NextChange, Timing
from workers.filterql.timing import CAP, Clock
from workers.filterql.values import to_number, to_time
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_S

LAST_INSTANT = 253402300799_999_999_999
"""9999-12-31T23:59:59.999999999Z: a flip later than this is reported as never (RFC 3339 and the
due index cannot hold it)."""

BUDGET = 5000
"""Candidate instants one next_change call may examine in all (nested searches share it)."""
BUDGET_LEFT: ContextVar[list[int] | None] = ContextVar("filterql_budget", default=None)
"""What is left of the budget of the search under way (None: no search is)."""


SPEND_FREE: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
"""Searches and steppers that never call :func:`spend` (arithmetic, or made only of such)."""
ONE_LOOP: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
"""Searches that spend only in their own loop, at most CAP times, over steppers of
``SPEND_FREE``: under a fresh budget of BUDGET > CAP they can never run out of it."""
assert CAP < BUDGET


def within_one_budget(search: Callable[..., Any]) -> bool:
    """Can ``search``, run alone under a fresh budget, never exhaust it? Then it answers the same
    with no budget at all (:func:`spend` without one lets every step through)."""
    return search in SPEND_FREE or search in ONE_LOOP


def spend() -> bool:
    """Use one unit of the search budget; False once it is gone (answer with a re-check then)."""
    b = BUDGET_LEFT.get()
    if b is None:
        return True
    b[0] -= 1
    return b[0] > 0


def budgeted(search: Callable[[], int | None]) -> int | None:
    """Run one whole search under a fresh budget, or under the one already running (then the
    answer is the nested search's own, for the outer search to weigh)."""
    if BUDGET_LEFT.get() is not None:
        return search()
    token = BUDGET_LEFT.set([BUDGET])
    try:
        at = search()
    finally:
        BUDGET_LEFT.reset(token)
    return at if at is not None and at <= LAST_INSTANT else None


def earliest(searches: Iterable[NextChange], p: Profile, t: int) -> int | None:
    """The earliest answer of several next-change searches (None: none of them ever changes)."""
    best: int | None = None
    for search in searches:
        x = search(p, t)
        if x is not None and (best is None or x < best):
            best = x
    return best


def node_next_change(node: CNode, profile: Profile, now: int) -> int | None:
    """The next instant T > now at which one phrase node's tri-state value changes, or None.

    For explain, which shows when each clause moves: the node's own exact searches ("is True"
    and "is False" change), under the same budget as :meth:`Filter.next_change`, so a clause whose
    calendar functions never settle gets a re-check instant, as a whole filter does.
    """
    true_change, false_change = node.next_true_change, node.next_false_change
    if true_change is None or false_change is None:
        return None
    token = BUDGET_LEFT.set([BUDGET]) if BUDGET_LEFT.get() is None else None
    try:
        at = earliest((true_change, false_change), profile, now)
    finally:
        if token is not None:
            BUDGET_LEFT.reset(token)
    return at if at is not None and at <= LAST_INSTANT else None


# -- leaves -----------------------------------------------------------------------------------------


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v.__class__ is list:
            out.extend(e for e in v if e is not None)
        elif v is not None:
            out.append(v)
    return out


def leaf_timing(node: CNode, operands: tuple[CNode, ...], thresholdable: bool) -> None:
    """Give a moving leaf its next changes: walk the instants where its operands cross.

    A clock operand crosses a static operand's value at an instant found by arithmetic; a step
    operand says when it may change next (jumping straight to a threshold when it can, if the
    static operands are numbers and ``thresholdable``). Between two consecutive candidates the leaf
    cannot change, so checking its value at each candidate in turn finds the first real change.
    """
    statics = tuple(o for o in operands if o.timing == Timing.STATIC)
    clocks = tuple(o.clock for o in operands if o.timing == Timing.CLOCK and o.clock is not None)
    steps = tuple(
        o.next_possible_change
        for o in operands
        if o.timing == Timing.STEP and o.next_possible_change is not None
    )
    month_pairs = _clocks_may_cross(clocks)
    moving = [o for o in operands if o.timing != Timing.STATIC]
    alone = moving[0] if len(moving) == 1 and moving[0].timing == Timing.STEP else None
    cycle = alone.steps_per_cycle if alone is not None else None
    evaluate = node.evaluate

    def prepare(p: Profile, now: int) -> tuple[list[int], list[float] | None]:
        values = _flat([o.evaluate(p, now) for o in statics])
        targets: list[int] = []
        if clocks:
            secs = {ns // NS_PER_S for ns in (to_time(v) for v in values) if ns is not None}
            targets = sorted({s * NS_PER_S for s in secs} | {(s + 1) * NS_PER_S for s in secs})
        nums: list[float] | None = None
        if thresholdable and steps:
            nums = []
            for v in values:
                n = to_number(v)
                if n is None or (isinstance(n, float) and not math.isfinite(n)):
                    nums = None
                    break
                nums.append(float(n))
        return targets, nums

    def candidate(p: Profile, t: int, targets: list[int], nums: list[float] | None) -> int | None:
        best: int | None = None
        if targets:
            for clock in clocks:
                x = clock.next_reach(t, targets)
                if x is not None and (best is None or x < best):
                    best = x
        if month_pairs:
            month = dates.next_month_start(t)
            if best is None or month < best:
                best = month
        for step in steps:
            x = step(p, t, nums)
            if x is not None and (best is None or x < best):
                best = x
        return best

    def possible_change(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        targets, nums = prepare(p, t)
        return candidate(p, t, targets, nums)

    def after(p: Profile, now: int, want: bool) -> int | None:
        """Next change of ``evaluate(...) is want``."""
        cur = evaluate(p, now) is want
        targets, nums = prepare(p, now)
        t = now
        for i in range(CAP):
            nxt = candidate(p, t, targets, nums)
            if nxt is None:
                return None
            if (evaluate(p, nxt) is want) is not cur:
                return nxt
            t = nxt
            if cycle is not None and i + 1 >= cycle:
                return None
            if not spend():
                return candidate(p, t, targets, nums)  # re-check: nothing changes before it
        return t

    def true_change(p: Profile, now: int) -> int | None:
        return after(p, now, True)

    def false_change(p: Profile, now: int) -> int | None:
        return after(p, now, False)

    node.timing = Timing.STEP
    node.next_true_change = true_change
    node.next_false_change = false_change
    node.next_possible_change = possible_change
    node.steps_per_cycle = cycle
    if all(step in SPEND_FREE for step in steps):
        SPEND_FREE.add(possible_change)
        ONE_LOOP.add(true_change)
        ONE_LOOP.add(false_change)


def _clocks_may_cross(clocks: tuple[Clock, ...]) -> bool:
    """Can two of these clocks change order? Only if a calendar one's offset range meets another's.

    Every clock is ``T + offset`` with the offset constant per calendar month and within known
    bounds, so two clocks whose offset ranges do not meet keep their order for ever.
    """
    ranges = []
    for c in clocks:
        lo, hi = dates.month_delta_bounds(c.months) if c.months else (0, 0)
        ranges.append((lo + c.fixed, hi + c.fixed, bool(c.months)))
    for i, (lo1, hi1, m1) in enumerate(ranges):
        for lo2, hi2, m2 in ranges[i + 1 :]:
            if (m1 or m2) and lo1 <= hi2 and lo2 <= hi1:
                return True
    return False


def derive_step(node: CNode, args: tuple[CNode, ...]) -> None:
    """A value computed from step values moves when any of them may move."""
    moving = tuple(
        a for a in args if a.timing == Timing.STEP and a.next_possible_change is not None
    )
    if not moving:
        return
    steps = tuple(a.next_possible_change for a in moving if a.next_possible_change is not None)

    def possible_change(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        best: int | None = None
        for step in steps:
            x = step(p, t, None)
            if x is not None and (best is None or x < best):
                best = x
        return best

    node.timing = Timing.STEP
    node.next_possible_change = possible_change
    node.steps_per_cycle = moving[0].steps_per_cycle if len(moving) == 1 else None
    if all(step in SPEND_FREE for step in steps):
        SPEND_FREE.add(possible_change)


# -- phrases ------------------------------------------------------------------------------------------


def phrase_step(node: CNode) -> None:
    """A moving phrase's value changes when "is True" or "is False" does: that is its step."""
    true_change, false_change = node.next_true_change, node.next_false_change
    assert true_change is not None and false_change is not None

    def possible_change(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        a, b = true_change(p, t), false_change(p, t)
        if a is None:
            return b
        return a if b is None or a < b else b

    node.next_possible_change = possible_change
    if true_change in SPEND_FREE and false_change in SPEND_FREE:
        SPEND_FREE.add(possible_change)


def stepping_through(evaluate: Evaluator, kids: tuple[CNode, ...], want: bool) -> NextChange:
    """Exact next change of "the phrase is ``want``" for a phrase that depends on its parts' values
    in order: between two instants where some part changes, nothing can change."""
    searches = tuple(
        f for k in kids if k.timing for f in (k.next_true_change, k.next_false_change) if f
    )

    def change(p: Profile, now: int) -> int | None:
        cur = evaluate(p, now) is want
        t = now
        for _ in range(CAP):
            best = earliest(searches, p, t)
            if best is None:
                return None
            if (evaluate(p, best) is want) is not cur:
                return best
            t = best
            if not spend():
                return earliest(searches, p, t)
        return t

    return change


def settling(evaluate: Evaluator, kids: tuple[CNode, ...], all_needed: bool) -> NextChange:
    """Exact next change of "AND/OR is True", from the children's own "is True" changes.

    ``all_needed``: the node is true only when every child is (AND); otherwise when any child is
    (OR). While that condition holds for all children, the first child to change ends it; while it
    holds through one child that never changes, nothing can end it (and while it fails through one
    such child, nothing can start it). Otherwise step from one child change to the next and look.
    """
    searches = tuple(k.next_true_change for k in kids if k.timing and k.next_true_change)
    kid_searches = tuple((k.evaluate, k.next_true_change if k.timing else None) for k in kids)

    def change(p: Profile, now: int) -> int | None:
        cur = evaluate(p, now) is True
        if cur is all_needed:
            # Every child agrees (all true / none true): the first child to change decides.
            return earliest(searches, p, now)
        t = now
        for _ in range(CAP):
            best: int | None = None
            for kid_evaluate, kid_search in kid_searches:
                x = kid_search(p, t) if kid_search is not None else None
                if x is None:
                    if (kid_evaluate(p, t) is True) is not all_needed:
                        return None  # this child holds the answer where it is, for ever
                elif best is None or x < best:
                    best = x
            if best is None:
                return None
            if (evaluate(p, best) is True) is not cur:
                return best
            t = best
            if not spend():
                return earliest(searches, p, t)  # re-check: no child changes before it
        return t

    return change
