"""The next change in words: when the answer flips with no new data, and which clause makes it.

The flip instant is :meth:`Filter.next_change`'s; the sentence follows the clauses whose values
flip then down to a leaf, and says what moves there: an occurrence leaving a window, a date
turning so many days old, a stepping value going from one number to the next.
"""

from __future__ import annotations

from typing import Any

from workers.filterql.explain.explanation import Change, Clause, negated_leaf, operand
from workers.filterql.explain.text import rfc, show_value
from workers.filterql.filter import Filter
from workers.filterql.node import CNode, Timing, WindowReader
from workers.filterql.source import Source, one_line
from workers.filterql.syntax import Literal
from workers.filterql.timing import Clock
from workers.filterql.values import to_time, tri
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S


def next_change(f: Filter, root: Clause, p: Profile, now: int, at: int, before: bool) -> Change:
    after = f.matches(p, at)
    if after == before:
        return Change(
            at=at,
            enters=before,
            recheck=True,
            path=[],
            clause=root.text,
            sentence=(
                f"no change before {rfc(at)}: the search for the next change stops there "
                "(calendar functions keep changing without deciding), so ask again then"
            ),
        )
    path, chain = _blame(root, p, at)
    leaf = chain[-1]
    reason = _leaf_reason(leaf, p, at)
    includes = [c for c in chain[:-1] if c.kind == "include"]
    if includes:
        parts = []
        for c in includes:
            was = tri(c.node.evaluate(p, at - 1))
            parts.append(f"INCLUDE {c.include} {'stops' if was else 'starts'} matching")
        reason = " because ".join(parts) + ": " + reason
    verb = "enters" if after else "exits"
    return Change(
        at=at,
        enters=after,
        recheck=False,
        path=path,
        clause=leaf.text,
        sentence=f"{verb} {rfc(at)} when {reason}",
    )


def _blame(root: Clause, p: Profile, at: int) -> tuple[list[int], list[Clause]]:
    """Follow the clauses whose value flips at ``at`` from the root down to a leaf."""
    path: list[int] = []
    chain = [root]
    c = root
    while c.children:
        new_parent = tri(c.node.evaluate(p, at))
        flipped = [
            (i, k)
            for i, k in enumerate(c.children)
            if tri(k.node.evaluate(p, at - 1)) != tri(k.node.evaluate(p, at))
        ]
        if not flipped:
            break
        if c.kind in ("and", "or"):
            same = [(i, k) for i, k in flipped if tri(k.node.evaluate(p, at)) == new_parent]
            flipped = same or flipped
        i, c = flipped[0]
        path.append(i)
        chain.append(c)
    return path, chain


def _turn(was: bool | None, now: bool | None) -> str:
    if now is True:
        return "starts to hold"
    if was is True and now is False:
        return "stops holding"
    return "becomes false" if now is False else "becomes unknown"


def _leaf_reason(leaf: Clause, p: Profile, at: int) -> str:
    node = leaf.node
    was, now = tri(node.evaluate(p, at - 1)), tri(node.evaluate(p, at))
    if leaf.window is not None and isinstance(node.detail, WindowReader):
        return _window_reason(node.detail, p, at) or f"{one_line(leaf.text)} {_turn(was, now)}"
    inner = negated_leaf(node)
    operands = (inner or node).children
    src = leaf.source
    detail = _crossing(operands, p, at, src) or _stepped(operands, p, at, src)
    head = f"{one_line(leaf.text)} {_turn(was, now)}"
    return f"{head}: {detail}" if detail else head


def _window_reason(reader: WindowReader, p: Profile, at: int) -> str | None:
    times = list(reader.times(p))
    span, need = reader.window, reader.need
    leaving = [t for t in times if t + span == at]
    if not leaving:
        return None
    left = sum(1 for t in times if t + span > at)
    days = _number_text(reader.days)
    what = f"the {reader.event} of {rfc(leaving[-1])} leaves the {days}-day window"
    if need > 1:
        what += f" ({left} left in it, {need} needed)"
    return what


def _flat(v: Any) -> list[Any]:
    if isinstance(v, list):
        return [x for x in v if x is not None]
    return [] if v is None else [v]


def _crossing(operands: tuple[CNode, ...], p: Profile, at: int, src: Source) -> str:
    """A moving time that reaches or passes a date at ``at``: which one, said the natural way."""
    clocks = [o for o in operands if o.timing == Timing.CLOCK and o.clock is not None]
    statics = [o for o in operands if o.timing == Timing.STATIC]
    for c in clocks:
        clock = c.clock
        assert clock is not None
        g0, g1 = clock.at(at - 1) // NS_PER_S, clock.at(at) // NS_PER_S
        for s in statics:
            values = _flat(s.evaluate(p, at))
            for v in values:
                tv = to_time(v)
                if tv is None:
                    continue
                sec = tv // NS_PER_S
                if (g0 > sec) - (g0 < sec) == (g1 > sec) - (g1 < sec):
                    continue
                name = operand(src, s)
                if isinstance(s.syntax, Literal):
                    subject = name
                elif len(values) > 1 or isinstance(s.evaluate(p, at), list):
                    subject = f"{rfc(tv)} (in {name})"
                else:
                    subject = f"{name} ({rfc(tv)})"
                return _clock_sentence(clock, operand(src, c), subject, reaches=g1 == sec)
    return ""


def _clock_sentence(clock: Clock, clock_text: str, subject: str, reaches: bool) -> str:
    """``"now-7d"`` reaching a date is the date turning 7 days old; ``"now+3d"``, 3 days away."""
    fixed, months = clock.fixed, clock.months
    if not fixed and not months:
        return f"now {'reaches' if reaches else 'passes'} {subject}"
    past = fixed < 0 or (fixed == 0 and months < 0)
    if (fixed < 0 < months) or (months < 0 < fixed):  # mixed signs: say what moves
        return f"{clock_text} {'reaches' if reaches else 'passes'} {subject}"
    span = _span_text(abs(fixed), abs(months))
    if past:
        return f"{subject} {'turns' if reaches else 'is more than'} {span} old"
    return f"{subject} is {'' if reaches else 'less than '}{span} away"


def _stepped(operands: tuple[CNode, ...], p: Profile, at: int, src: Source) -> str:
    """A value that steps with time (daysago, the calendar functions): from what to what."""
    for o in operands:
        if o.timing != Timing.STEP:
            continue
        a, b = o.evaluate(p, at - 1), o.evaluate(p, at)
        if a != b:
            return f"{operand(src, o)} goes from {show_value(a)} to {show_value(b)}"
    return ""


_UNITS = (
    (NS_PER_DAY, "day"),
    (3600 * NS_PER_S, "hour"),
    (60 * NS_PER_S, "minute"),
    (NS_PER_S, "second"),
)


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _span_text(ns: int, months: int) -> str:
    parts: list[str] = []
    if months:
        years, rest = divmod(months, 12)
        parts.append(_plural(years, "year") if not rest else _plural(months, "month"))
    if ns:
        for size, unit in _UNITS:
            if ns % size == 0:
                parts.append(_plural(ns // size, unit))
                break
        else:
            parts.append(f"{_number_text(ns / NS_PER_S)} seconds")
    return " and ".join(parts)


def _number_text(x: float) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)
