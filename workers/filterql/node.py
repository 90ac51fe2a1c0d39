"""The compiled form of a filter: a tree of nodes, each holding the closure that computes its value.

Parents call their children's ``evaluate`` directly, so evaluating a profile is a few dozen Python
calls and no tree walking; the tree stays around so explain can call any node's own closure and
show the very values that decided the answer.

Values are tri-state where a phrase is expected: True, False, or None ("unknown": a missing field,
a number where a phrase should be...). A node's :class:`Timing` says how its value moves with time,
and a moving phrase knows its exact next change (see next_change.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from workers.filterql.syntax import Node, Pos
from workers.filterql.timing import Clock
from workers.pipeline.profile import Profile

if TYPE_CHECKING:
    from workers.filterql.filter import Filter

Evaluator = Callable[[Profile, int], Any]
"""``evaluate(profile, now)``: the node's value at ``now`` (ns)."""
NextChange = Callable[[Profile, int], "int | None"]
"""The first instant after ``now`` at which something changes, or None if nothing ever does."""
Stepper = Callable[[Profile, int, "list[float] | None"], "int | None"]
"""``(profile, t, thresholds)``: an instant after ``t`` by which a value may have changed."""


class Timing(IntEnum):
    """How a node's value moves with time (false only for STATIC, so ``if node.timing`` reads)."""

    STATIC = 0
    """Depends on the profile only."""
    CLOCK = 1
    """A moving time: ``now()``, ``"now-7d"``."""
    STEP = 2
    """Piecewise constant in time: ``daysago()``, ``yy()``, ``timewindow()``, and every phrase
    that reads a moving value."""


@dataclass(frozen=True, slots=True)
class WindowReader:
    """What a ``timewindow(event, need, days)`` closure captured, for explain to show."""

    event: str
    need: int
    days: float
    window: int
    """The window's length in ns."""
    times: Callable[[Profile], list[int]]
    """The event's occurrences in a profile, ascending."""


@dataclass(frozen=True, slots=True)
class IncludedAudience:
    """The compiled filter an INCLUDE reads."""

    filter: Filter


@dataclass(frozen=True, slots=True)
class BareValue:
    """A literal used as a phrase: infix ``a AND b`` reads the value itself, not its truth."""

    value: Any


@dataclass(frozen=True, slots=True)
class DateMathText:
    """A ``"now-7d"`` literal's text (qlbridge compares it as text where it is no date)."""

    text: str


Detail = WindowReader | IncludedAudience | BareValue | DateMathText


@dataclass(slots=True, eq=False)
class CNode:
    """One compiled node: its closure, its children, and how its value moves with time.

    A moving phrase has ``next_true_change`` and ``next_false_change``: the exact next instant at
    which "the value is True" (resp. "is False") changes, or None if it never does with no new
    data. Keeping the two apart is what makes next_change exact through NOT and unknowns (NOT maps
    "is False" to "is True"). A STEP value has ``next_possible_change``: an instant by which its
    value may have changed, never later than the real change; a calendar one repeats after
    ``steps_per_cycle`` of them. A CLOCK has its ``clock``.

    For explain (never read while evaluating): ``syntax`` is the node compiled from (its source
    slice); ``detail`` is what a closure captured that explain must show.
    """

    kind: str
    label: str
    pos: Pos
    evaluate: Evaluator
    children: tuple[CNode, ...] = ()
    timing: Timing = Timing.STATIC
    next_true_change: NextChange | None = None
    next_false_change: NextChange | None = None
    next_possible_change: Stepper | None = None
    steps_per_cycle: int | None = None
    clock: Clock | None = None
    syntax: Node | None = None
    detail: Detail | None = None

    def __repr__(self) -> str:
        return f"CNode({self.kind}, {self.label!r}, {self.timing.name})"


def constant(value: Any) -> Evaluator:
    """An evaluator that always answers ``value``."""

    def evaluate(p: Profile, now: int) -> Any:
        return value

    return evaluate
