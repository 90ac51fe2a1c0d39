"""Explain one filter's answer for one profile: every clause's value, what decided it, what moves it.

Operators ask "why is this user in (or not in) this audience, and when will that change?". The
answer is read off the compiled :class:`CNode` tree: each clause's value comes from calling that
node's own closure, the very closure its parent calls when :meth:`Filter.matches` runs, and the
next change is :meth:`Filter.next_change` itself. There is no second interpreter that could
disagree with the answer that decided membership; explain only adds what a person needs to read it
(source text, the field values a clause read, the occurrences inside a window, a sentence).
"""

from __future__ import annotations

from workers.filterql.explain.change import next_change
from workers.filterql.explain.explanation import (
    Change,
    Clause,
    Explanation,
    Read,
    Window,
    negated_leaf,
)
from workers.filterql.filter import Filter, one_evaluation
from workers.filterql.next_change import node_next_change
from workers.filterql.node import CNode, IncludedAudience, WindowReader
from workers.filterql.source import Source
from workers.filterql.syntax import Logic
from workers.filterql.values import tri
from workers.pipeline.profile import Profile


def explain(filter: Filter, profile: Profile, now: int) -> Explanation:
    """Explain ``filter.matches(profile, now)``: the same closures, clause by clause."""
    # The answer and the next change are asked exactly as the drain asks them, each in its own
    # scope: inside the clauses' shared scope below, included audiences' answers already found
    # would spare a re-check search some of its budget, and it would stop at a later instant.
    matches = filter.matches(profile, now)
    at = filter.next_change(profile, now)
    with one_evaluation():  # each included audience is asked once, however often it is named
        root = _Builder(profile, now).clause(filter.root, Source(filter.statement), True)
        change: Change | None = None
        if at is not None:
            change = next_change(filter, root, profile, now, at, matches)
    return Explanation(filter.text, now, matches, filter.time_dependent, root, change)


class _Builder:
    """Mirrors the compiled tree clause by clause, calling each node's own closure for its value."""

    def __init__(self, profile: Profile, now: int) -> None:
        self.p = profile
        self.now = now
        self.shown: set[int] = set()
        """Included audiences already expanded: a later INCLUDE of one shows its value only, so
        an audience named at many places (or 2^n times through nested includes) is shown once."""

    def value(self, node: CNode) -> bool | None:
        return tri(node.evaluate(self.p, self.now))

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
