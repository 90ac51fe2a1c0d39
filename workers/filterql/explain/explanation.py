"""What an explanation holds: a tree of clauses mirroring the compiled filter, and the next change.

Each :class:`Clause` keeps the compiled node it shows, so its value is that node's own closure's
and the next change can be traced through it; ``as_dict`` is the JSON the API and the CLI give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.filterql.explain.text import jsonable, render, rfc, show_value, tri_text
from workers.filterql.node import CNode
from workers.filterql.source import Source, one_line
from workers.filterql.syntax import Between, Binary

_NEGATED = ("not_in", "not_intersects", "not_contains", "not_like", "not_between")


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


def operand(src: Source, node: CNode) -> str:
    """An operand as written (``last_seen``, ``"now-7d"``, ``dayofweek()``), on one line."""
    return one_line(src.slice(node.syntax, node.label))
