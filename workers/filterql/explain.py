"""Explain one filter's answer for one profile: every clause's value, what decided it, what moves it.

Operators ask "why is this user in (or not in) this audience, and when will that change?". The
answer is read off the compiled :class:`CNode` tree: each clause's value comes from calling that
node's own closure, the very closure its parent calls when :meth:`Filter.matches` runs, and the
next change is :meth:`Filter.next_change` itself. There is no second interpreter that could
disagree with the answer that decided membership; explain only adds what a person needs to read it
(source text, the field values a clause read, the occurrences inside a window, a sentence).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from workers.filterql.filter import Filter, one_evaluation
from workers.filterql.next_change import node_next_change
from workers.filterql.node import CNode, IncludedAudience, Timing, WindowReader
from workers.filterql.source import Source, one_line
from workers.filterql.syntax import Between, Binary, Literal, Logic
from workers.filterql.timing import Clock
from workers.filterql.values import Time, to_time
from workers.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339

TEXT_WIDTH = 64
"""Longest clause text in the text form before it is cut with an ellipsis (JSON keeps it whole)."""
NOTE_VALUE_WIDTH = 48
NOTE_TIMES = 5

_NEGATED = ("not_in", "not_intersects", "not_contains", "not_like", "not_between")


def rfc(ns: int) -> str:
    """RFC 3339, or the bare number for an instant no calendar can print (years past 9999)."""
    try:
        return format_rfc3339(ns)
    except (ValueError, OverflowError, OSError):
        return str(ns)


def _tri(v: Any) -> bool | None:
    """A phrase value as its parents read it: True, False, or unknown."""
    if v is True:
        return True
    if v is False:
        return False
    return None


def tri_text(v: bool | None) -> str:
    return "unknown" if v is None else "true" if v else "false"


# -- the explanation --------------------------------------------------------------------------------


@dataclass(slots=True)
class Read:
    """One value a clause read: a field, a moving time, a function or arithmetic result."""

    text: str
    value: Any

    @property
    def shown(self) -> str:
        return show_value(self.value)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "value": jsonable(self.value), "shown": self.shown}


@dataclass(slots=True)
class Window:
    """What ``timewindow(event, need, days)`` counted: the occurrences inside the window at now."""

    event: str
    need: int
    days: float
    since: int
    """Occurrences after this instant count (``t + days > now``); later ones (even future) too."""
    times: list[int]
    """The occurrences inside the window, ascending."""
    total: int
    """Occurrences recorded for the event in all."""

    @property
    def count(self) -> int:
        return len(self.times)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "need": self.need,
            "days": self.days,
            "since": rfc(self.since),
            "since_ns": self.since,
            "count": self.count,
            "times": [rfc(t) for t in self.times],
            "times_ns": list(self.times),
            "total": self.total,
        }


@dataclass(slots=True)
class Clause:
    """One clause of the filter (or of an INCLUDEd audience) and its value for the profile."""

    kind: str
    text: str
    line: int
    column: int
    value: bool | None
    decides: bool
    """Among the clauses that decided its parent's value (the root always decides)."""
    decided_by: list[int]
    """Indices of the children that decided this clause's value."""
    reads: list[Read]
    window: Window | None
    include: str | None
    changes_at: int | None
    """When this clause's own value next changes with no new data (None: never by time alone)."""
    children: list[Clause]
    node: CNode = field(repr=False, compare=False)
    source: Source = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "line": self.line,
            "column": self.column,
            "value": tri_text(self.value),
            "decides": self.decides,
            "decided_by": list(self.decided_by),
            "reads": [r.as_dict() for r in self.reads],
            "window": self.window.as_dict() if self.window is not None else None,
            "include": self.include,
            "changes_at": rfc(self.changes_at) if self.changes_at is not None else None,
            "changes_at_ns": self.changes_at,
            "children": [c.as_dict() for c in self.children],
        }


@dataclass(slots=True)
class Change:
    """The next moment the answer changes with no new data, and the clause responsible."""

    at: int
    enters: bool
    """True: the profile enters the audience at ``at``; False: it exits."""
    recheck: bool
    """The search budget ran out: nothing flips before ``at``, and asking again then continues."""
    path: list[int]
    """Child indices from the root to the responsible clause ([] for the root itself)."""
    clause: str
    sentence: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": rfc(self.at),
            "at_ns": self.at,
            "enters": self.enters,
            "recheck": self.recheck,
            "path": list(self.path),
            "clause": self.clause,
            "sentence": self.sentence,
        }


@dataclass(slots=True)
class Explanation:
    """A filter's answer for one profile at one instant, as a tree mirroring the filter."""

    filter: str
    now: int
    matches: bool
    time_dependent: bool
    root: Clause
    next_change: Change | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "filter": self.filter,
            "now": rfc(self.now),
            "now_ns": self.now,
            "matches": self.matches,
            "time_dependent": self.time_dependent,
            "tree": self.root.as_dict(),
            "next_change": self.next_change.as_dict() if self.next_change is not None else None,
        }

    def render_text(self) -> str:
        """The tree with each clause's value and what it read, then the next change."""
        return render(self.as_dict())


def explain(filter: Filter, profile: Profile, now: int) -> Explanation:
    """Explain ``filter.matches(profile, now)``: the same closures, clause by clause."""
    with one_evaluation():  # each included audience is asked once, however often it is named
        root = _Builder(profile, now).clause(filter.root, Source(filter.statement), True)
        matches = filter.matches(profile, now)
        change: Change | None = None
        at = filter.next_change(profile, now)
        if at is not None:
            change = _change(filter, root, profile, now, at, matches)
    return Explanation(filter.text, now, matches, filter.time_dependent, root, change)


# -- the text form --------------------------------------------------------------------------------


def render(explained: dict[str, Any]) -> str:
    """The text form of an explanation's JSON (``tree`` and ``next_change``), so the CLI, the API
    and the dashboard print one and the same thing whether they hold the object or its JSON::

        AND (score >= 20, timewindow(purchase, 2, 7))  false    <- decided by timewindow(…)
        ├─ score >= 20                                 true     score = 42
        └─ timewindow(purchase, 2, 7)                  false    1 in window: … (needs 2)
        next change: never (with no new data)
    """
    rows: list[tuple[str, str, str]] = []

    def walk(c: dict[str, Any], lead: str, branch: str) -> None:
        text = _cut(one_line(c["text"], TEXT_WIDTH), TEXT_WIDTH)
        rows.append((lead + branch + text, c["value"], clause_note(c)))
        cont = lead + ("│  " if branch == "├─ " else "   " if branch else "")
        kids = c["children"]
        for i, child in enumerate(kids):
            walk(child, cont, "└─ " if i == len(kids) - 1 else "├─ ")

    walk(explained["tree"], "", "")
    width = max(len(left) for left, _v, _n in rows)
    lines = [f"{left:<{width}}  {value:<7}  {note}".rstrip() for left, value, note in rows]
    lines.append(f"next change: {change_sentence(explained.get('next_change'))}")
    return "\n".join(lines)


def change_sentence(change: dict[str, Any] | None) -> str:
    return "never (with no new data)" if change is None else str(change["sentence"])


def clause_note(c: dict[str, Any]) -> str:
    """What the text form prints after a clause's value: what it read, or what decided it."""
    w = c.get("window")
    if w is not None:
        times = w["times"][-NOTE_TIMES:]
        shown = ("…, " if w["count"] > NOTE_TIMES else "") + ", ".join(times)
        where = f": {shown}" if times else ""
        return f"{w['count']} in window{where} (needs {w['need']})"
    kids = c["children"]
    if c["kind"] in ("and", "or") and kids:
        decided = c["decided_by"]
        if len(decided) == len(kids) > 1:
            return "<- all hold" if c["value"] == "true" else "<- none holds"
        names = ", ".join(_cut(one_line(kids[i]["text"], 40), 40) for i in decided)
        return f"<- decided by {names}" if names else ""
    if c["kind"] == "include":
        return f"audience {c['include']}"
    return ", ".join(f"{r['text']} = {_cut(r['shown'], NOTE_VALUE_WIDTH)}" for r in c["reads"])


# -- source text ------------------------------------------------------------------------------------


def _operand(src: Source, node: CNode) -> str:
    """An operand as written (``last_seen``, ``"now-7d"``, ``dayofweek()``), on one line."""
    return one_line(src.slice(node.syntax, node.label))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- values as people and JSON read them ------------------------------------------------------------


def jsonable(v: Any) -> Any:
    """A value as JSON can hold it: times as RFC 3339, odd floats and objects as text."""
    if v is None or v is True or v is False or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Time):
        return rfc(v.ns)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return str(v)


def show_value(v: Any) -> str:
    """A value as the text form prints it: ``42``, ``"pro"``, a time, or ``missing``."""
    if v is None:
        return "missing"
    if isinstance(v, Time):
        return rfc(v.ns)
    try:
        return json.dumps(jsonable(v), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(v)


# -- building the tree ------------------------------------------------------------------------------


class _Builder:
    """Mirrors the compiled tree clause by clause, calling each node's own closure for its value."""

    def __init__(self, profile: Profile, now: int) -> None:
        self.p = profile
        self.now = now
        self.shown: set[int] = set()
        """Included audiences already expanded: a later INCLUDE of one shows its value only, so
        an audience named at many places (or 2^n times through nested includes) is shown once."""

    def value(self, node: CNode) -> bool | None:
        return _tri(node.evaluate(self.p, self.now))

    def clause(self, node: CNode, src: Source, decides: bool) -> Clause:
        p, now = self.p, self.now
        value = self.value(node)
        kind = node.kind
        text = src.slice(node.syntax, node.label)
        pos = node.syntax.pos if node.syntax is not None else node.pos
        line, column = pos.line, pos.column
        children: list[Clause] = []
        decided: list[int] = []
        reads: list[Read] = []
        window: Window | None = None
        include: str | None = None
        operands: tuple[CNode, ...] = node.children
        inner = negated_leaf(node)
        if inner is not None:
            kind = node.label.lower().replace(" ", "_")
            operands = inner.children
        if kind in ("and", "or"):
            kid_values = [self.value(k) for k in node.children]
            infix = isinstance(node.syntax, Logic) and node.syntax.infix
            decided = _deciders(kind, value, kid_values, infix)
            children = [self.clause(k, src, i in decided) for i, k in enumerate(node.children)]
        elif kind == "not" and node.children:
            decided = [0]
            children = [self.clause(node.children[0], src, True)]
        elif kind == "include" and isinstance(node.detail, IncludedAudience):
            inc = node.detail.filter
            include = node.label
            if id(inc) not in self.shown:
                self.shown.add(id(inc))
                decided = [0]
                children = [self.clause(inc.root, Source(inc.statement), True)]
        elif kind == "timewindow" and isinstance(node.detail, WindowReader):
            reader = node.detail
            times = list(reader.times(p))
            span = reader.window
            window = Window(
                event=reader.event,
                need=reader.need,
                days=reader.days,
                since=now - span,
                times=[t for t in times if t + span > now],
                total=len(times),
            )
        else:
            reads = self.reads(operands, src, top_is_clause=kind == "truth")
        changes = node_next_change(node, p, now) if node.timing else None
        return Clause(
            kind=kind,
            text=text,
            line=line,
            column=column,
            value=value,
            decides=decides,
            decided_by=decided,
            reads=reads,
            window=window,
            include=include,
            changes_at=changes,
            children=children,
            node=node,
            source=src,
        )

    def reads(self, operands: tuple[CNode, ...], src: Source, top_is_clause: bool) -> list[Read]:
        """The values a leaf read: fields and moving times, and computed operands with their parts."""
        found: dict[str, Read] = {}

        def visit(n: CNode, top: bool) -> None:
            if n.kind == "literal":
                return
            if n.kind == "list":
                for c in n.children:
                    visit(c, False)
                return
            if not (top and top_is_clause and n.kind not in ("field", "clock")):
                text = src.slice(n.syntax, n.label)
                if text not in found:
                    found[text] = Read(text, n.evaluate(self.p, self.now))
            if n.kind not in ("field", "clock"):
                for c in n.children:
                    visit(c, False)

        for o in operands:
            visit(o, True)
        return list(found.values())


def negated_leaf(node: CNode) -> CNode | None:
    """``x NOT IN (…)`` compiles to NOT over IN; explain shows it as the one clause written."""
    if node.kind != "not" or len(node.children) != 1:
        return None
    child = node.children[0]
    syn = node.syntax
    if (
        isinstance(syn, (Binary, Between))
        and syn.negated
        and child.syntax is syn
        and node.label.lower().replace(" ", "_") in _NEGATED
    ):
        return child
    return None


def _deciders(kind: str, value: bool | None, kids: list[bool | None], infix: bool) -> list[int]:
    """Which children decided an AND/OR: the first part that is not true of a false or unknown
    group AND (qlbridge stops there), the parts that are not true of an infix ``a AND b``, the true
    parts of a true OR; every part when all were needed."""
    if kind == "and":
        if value is True:
            return list(range(len(kids)))
        if infix:
            return [i for i, v in enumerate(kids) if v is not True]
        return [next(i for i, v in enumerate(kids) if v is not True)]
    if value is True:
        return [i for i, v in enumerate(kids) if v is True]
    return list(range(len(kids)))


# -- the next change and its sentence ---------------------------------------------------------------


def _change(f: Filter, root: Clause, p: Profile, now: int, at: int, before: bool) -> Change:
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
            was = _tri(c.node.evaluate(p, at - 1))
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
        new_parent = _tri(c.node.evaluate(p, at))
        flipped = [
            (i, k)
            for i, k in enumerate(c.children)
            if _tri(k.node.evaluate(p, at - 1)) != _tri(k.node.evaluate(p, at))
        ]
        if not flipped:
            break
        if c.kind in ("and", "or"):
            same = [(i, k) for i, k in flipped if _tri(k.node.evaluate(p, at)) == new_parent]
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
    was, now = _tri(node.evaluate(p, at - 1)), _tri(node.evaluate(p, at))
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
                name = _operand(src, s)
                if isinstance(s.syntax, Literal):
                    subject = name
                elif len(values) > 1 or isinstance(s.evaluate(p, at), list):
                    subject = f"{rfc(tv)} (in {name})"
                else:
                    subject = f"{name} ({rfc(tv)})"
                return _clock_sentence(clock, _operand(src, c), subject, reaches=g1 == sec)
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
            return f"{_operand(src, o)} goes from {show_value(a)} to {show_value(b)}"
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
