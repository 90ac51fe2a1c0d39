"""Compiling function calls: arity, and how each kind of built-in moves with time.

Most functions are pure (their value moves only if an argument does). ``now()`` and date math are
clocks; the calendar functions and ``daysago()`` step at known instants, and can jump straight to
the instant they reach a threshold the comparison needs; ``timewindow()`` changes when its oldest
counted occurrence leaves the window. Each gets the next-change searches that say so exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workers.filterql import dates
from workers.filterql.fields import field_reader, ident_roots, raw_field, times_from_field
from workers.filterql.functions import FUNCTIONS, Function, daysago_of, time_of
from workers.filterql.next_change import SPEND_FREE, derive_step, phrase_step
from workers.filterql.node import CNode, DateMathText, Evaluator, Timing, WindowReader, constant
from workers.filterql.syntax import Call, Ident, Literal, Pos
from workers.filterql.timing import Clock
from workers.filterql.values import DateMath, Time
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S

if TYPE_CHECKING:
    from workers.filterql.compiler import Compiler


def compile_call(c: Compiler, node: Call) -> CNode:
    """A call ``name(args…)``: checked against the function's arity, compiled by its kind."""
    fn = FUNCTIONS.get(node.name)
    if fn is None:
        raise c.error(f"unknown function {node.name}()", node.pos)
    n = len(node.args)
    if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
        if fn.max_args is None:
            want = f"at least {fn.min_args}"
        elif fn.min_args == fn.max_args:
            want = str(fn.min_args)
        else:
            want = f"{fn.min_args} to {fn.max_args}"
        raise c.error(f"{fn.name}() takes {want} argument(s), not {n}", node.pos)
    kind = fn.kind
    if kind == "timewindow":
        return _timewindow(c, node)
    if kind == "now":
        return clock_node(Clock(0, 0), "now()", node.pos)
    if kind == "calendar":
        return _calendar(c, node, fn)
    if kind == "daysago":
        return _daysago(c, node)
    if kind == "exists":
        out = c.exists(node.args[0], node.pos, call=True)
        out.kind = "phrase"
        return out
    if kind == "todate" and n == 1:
        arg = c.value(node.args[0], time_pos=True)
        if arg.timing == Timing.CLOCK and arg.clock is not None:
            return clock_node(arg.clock, f"todate({arg.label})", node.pos)
    args = tuple(c.value(a) for a in node.args)
    for a in args:
        if a.timing == Timing.CLOCK:
            raise c.error(
                f"{fn.name}() cannot take a moving time (now(), date math); compare the time "
                "directly or use daysago()",
                node.pos,
            )
    out = CNode("call", fn.name, node.pos, call_evaluator(fn.impl, args), args)
    derive_step(out, args)
    return out


def call_evaluator(impl: Callable[..., Any], args: tuple[CNode, ...]) -> Evaluator:
    """A pure function over its arguments' values (one and two arguments without a list)."""
    if len(args) == 1:
        g0 = args[0].evaluate

        def evaluate1(p: Profile, now: int) -> Any:
            return impl(g0(p, now))

        return evaluate1
    if len(args) == 2:
        g0, g1 = args[0].evaluate, args[1].evaluate

        def evaluate2(p: Profile, now: int) -> Any:
            return impl(g0(p, now), g1(p, now))

        return evaluate2
    getters = tuple(a.evaluate for a in args)

    def evaluate(p: Profile, now: int) -> Any:
        return impl(*[g(p, now) for g in getters])

    return evaluate


def clock_node(clock: Clock, label: str, pos: Pos, text: str | None = None) -> CNode:
    """A moving time. ``text``: it is a date math literal, which qlbridge holds as text (read as a
    date only against a date), so its value is a DateMath; otherwise (now(), todate()) a Time."""
    fixed, months = clock.fixed, clock.months
    evaluate: Evaluator
    if text is not None:
        if months:

            def evaluate(p: Profile, now: int) -> Any:
                return DateMath(dates.add_months(now, months) + fixed, text)

        else:

            def evaluate(p: Profile, now: int) -> Any:
                return DateMath(now + fixed, text)

    elif months:

        def evaluate(p: Profile, now: int) -> Any:
            return Time(dates.add_months(now, months) + fixed)

    else:

        def evaluate(p: Profile, now: int) -> Any:
            return Time(now + fixed)

    detail = DateMathText(text) if text is not None else None
    return CNode("clock", label, pos, evaluate, (), Timing.CLOCK, clock=clock, detail=detail)


def _calendar(c: Compiler, node: Call, fn: Function) -> CNode:
    """yy(), mm(), dayofweek()…: of a static date a static value; of a clock, a value that steps
    at calendar boundaries (and jumps to the one where it reaches a threshold)."""
    impl = fn.impl
    # Without an argument, of now; an argument is read as it is ("now-1d" is no date math here).
    arg = c.value(node.args[0]) if node.args else clock_node(Clock(0, 0), "now()", node.pos)
    if arg.timing != Timing.CLOCK or arg.clock is None:
        out = CNode("call", fn.name, node.pos, call_evaluator(impl, (arg,)), (arg,))
        derive_step(out, (arg,))
        return out
    clock, unit = arg.clock, fn.unit
    jump = _CALENDAR_JUMPS.get(fn.name) if not clock.months else None
    fixed = clock.fixed

    def possible_change(p: Profile, t: int, nums: list[float] | None) -> int | None:
        if nums is None or jump is None:
            return clock.next_calendar(t, unit)
        # Jump straight to where the value reaches a threshold, or wraps round.
        g = t + fixed
        best = jump(g, None)
        for theta in nums:
            for n in {math.ceil(theta), math.floor(theta) + 1}:
                x = jump(g, n)
                if x is not None and (best is None or x < best):
                    best = x
        return None if best is None else best - fixed

    out = CNode("call", fn.name, node.pos, call_evaluator(impl, (arg,)), (arg,), Timing.STEP)
    out.next_possible_change = possible_change
    SPEND_FREE.add(possible_change)
    out.steps_per_cycle = fn.period if not clock.months else None
    return out


def _daysago(c: Compiler, node: Call) -> CNode:
    """Whole days since a date: a constant of date math, else a value stepping once a day."""
    arg = c.value(node.args[0], time_pos=True)
    if arg.timing == Timing.CLOCK and arg.clock is not None and not arg.clock.months:
        days = (-arg.clock.fixed) // NS_PER_DAY
        return CNode("call", "daysago", node.pos, constant(days), (arg,))
    if arg.timing != Timing.STATIC:
        raise c.error("daysago() needs a date that does not itself move with time", node.pos)
    get = arg.evaluate

    def evaluate(p: Profile, now: int) -> Any:
        then = time_of(get(p, now))
        return None if then is None else daysago_of(then, now)

    def possible_change(p: Profile, t: int, nums: list[float] | None) -> int | None:
        then = time_of(get(p, t))
        if then is None:
            return None
        if nums is None:
            return then + (daysago_of(then, t) + 1) * NS_PER_DAY
        best: int | None = None
        for theta in nums:
            for k in (math.ceil(theta), math.floor(theta) + 1):
                at = then + k * NS_PER_DAY
                if at > t and (best is None or at < best):
                    best = at
        return best

    out = CNode("call", "daysago", node.pos, evaluate, (arg,), Timing.STEP)
    out.next_possible_change = possible_change
    SPEND_FREE.add(possible_change)
    return out


def _timewindow(c: Compiler, node: Call) -> CNode:
    """``timewindow(event, need, days)``: at least ``need`` occurrences in the last ``days``."""
    what, n_node, d_node = node.args
    if isinstance(what, Ident):
        name = what.name
        roots = ident_roots(what)
        fallback = field_reader(what)
    elif isinstance(what, Literal) and isinstance(what.value, str):
        name = what.value
        roots = {name}
        fallback = raw_field(name)
    else:
        raise c.error(
            "timewindow() takes an event name first: timewindow(purchase, 2, 7)", node.pos
        )
    if not (isinstance(n_node, Literal) and _is_number(n_node.value) and n_node.value >= 1):
        raise c.error("timewindow() needs a count of at least 1 as its second argument", n_node.pos)
    if not (isinstance(d_node, Literal) and _is_number(d_node.value) and d_node.value > 0):
        raise c.error(
            "timewindow() needs a positive number of days as its third argument", d_node.pos
        )
    need = math.ceil(n_node.value)
    span = d_node.value * NS_PER_DAY
    if isinstance(span, float) and not math.isfinite(span):
        raise c.error("timewindow() days are out of range", d_node.pos)
    window = round(span)
    c.events.add(name)
    c.needs[name] = max(c.needs.get(name, 0), need)
    c.fields |= roots

    def times(p: Profile) -> list[int]:
        # A read profile converts only this list (Profile.times), not every event's.
        ts = p.occurrences.get(name) if p.stored is None else p.times(name)
        if ts is not None:
            return ts
        return times_from_field(fallback(p, 0))

    def evaluate(p: Profile, now: int) -> Any:
        stored = p.stored
        if stored is not None and not stored.done:
            # A read profile: its stored list answers without being converted.
            got = stored.nth_last(name, need)
            if got is not None:
                return got[0] >= need and got[1] + window > now
        ts = times(p)
        return len(ts) >= need and ts[-need] + window > now

    def change(p: Profile, now: int) -> int | None:
        stored = p.stored
        if stored is not None and not stored.done:
            got = stored.nth_last(name, need)
            if got is not None:
                if got[0] < need:
                    return None
                end = got[1] + window
                return end if end > now else None
        ts = times(p)
        if len(ts) < need:
            return None
        end = ts[-need] + window
        return end if end > now else None

    label = f"timewindow({name}, {n_node.value}, {d_node.value})"
    out = CNode("timewindow", label, node.pos, evaluate, (), Timing.STEP)
    out.next_true_change = out.next_false_change = change
    SPEND_FREE.add(change)
    phrase_step(out)
    out.detail = WindowReader(name, need, d_node.value, window, times)
    return out


def _is_number(v: Any) -> bool:
    return v.__class__ is int or v.__class__ is float


# -- where a calendar value next reaches a number ---------------------------------------------------


def _cycle_jump(
    cycle_start: Callable[[int], int], cycle: Callable[[int], int], unit: int, count: int
) -> Callable[[int, int | None], int | None]:
    """For a calendar field that counts ``unit``s from the start of a repeating cycle (hour of day,
    day of week...): the first instant after g where it becomes n (None: where the cycle restarts)."""

    def jump(g: int, n: int | None) -> int | None:
        start = cycle_start(g)
        if n is None:
            return start + cycle(start)
        if not 0 <= n < count:
            return None
        at = start + n * unit
        return at if at > g else start + cycle(start) + n * unit

    return jump


def _week_start(g: int) -> int:
    days = g // NS_PER_DAY
    return (days - dates.weekday(g)) * NS_PER_DAY


def _month_jump(g: int, n: int | None) -> int | None:
    y = dates.split_ns(g)[0]
    if n is None:
        return dates.days_from_civil(y + 1, 1, 1) * NS_PER_DAY
    if not 1 <= n <= 12:
        return None
    at = dates.days_from_civil(y, n, 1) * NS_PER_DAY
    return at if at > g else dates.days_from_civil(y + 1, n, 1) * NS_PER_DAY


_HOUR = 3600 * NS_PER_S
_CALENDAR_JUMPS: dict[str, Callable[[int, int | None], int | None]] = {
    "hourofday": _cycle_jump(
        lambda g: g // NS_PER_DAY * NS_PER_DAY, lambda _s: NS_PER_DAY, _HOUR, 24
    ),
    "dayofweek": _cycle_jump(_week_start, lambda _s: 7 * NS_PER_DAY, NS_PER_DAY, 7),
    "hourofweek": _cycle_jump(_week_start, lambda _s: 7 * NS_PER_DAY, _HOUR, 168),
    "mm": _month_jump,
    "monthofyear": _month_jump,
}
