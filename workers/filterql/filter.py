"""A compiled FILTER statement, and what one evaluation of one profile shares.

``Filter.matches`` and ``Filter.next_change`` are what the engine calls per profile. Audiences
that INCLUDE each other share one memo per evaluation, so an audience named many times (or 2^n
times through nested includes) is asked once per instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from workers.filterql.next_change import (
    BUDGET,
    BUDGET_LEFT,
    LAST_INSTANT,
    budgeted,
    within_one_budget,
)
from workers.filterql.node import CNode, Evaluator, NextChange, Timing
from workers.filterql.syntax import Statement
from workers.pipeline.profile import Profile

_MEMO: ContextVar[dict[tuple[int, int, int], Any] | None] = ContextVar(
    "filterql_memo", default=None
)
"""Answers of included audiences during one evaluation of one profile: (filter, question, instant)
-> answer. ``a = AND (INCLUDE b, INCLUDE b)``, ``b = AND (INCLUDE c, INCLUDE c)``… would otherwise
evaluate the last audience 2^depth times; with it every included audience is asked once per
instant, however often it is named."""
ASKED_MATCH, ASKED_TRUE_CHANGE, ASKED_FALSE_CHANGE = 0, 1, 2
"""The questions the memo keeps answers to."""
_UNKNOWN = object()
_BUDGET_LEFT = BUDGET_LEFT  # bound here: CPython 3.11 calls methods of an imported name slower


def memoized(ident: int, question: int, search: NextChange) -> NextChange:
    """An included audience's next change (of "is true" or of "is false"), asked once per
    instant within one evaluation (see ``_MEMO``)."""

    def change(p: Profile, now: int) -> int | None:
        answers = _MEMO.get()
        if answers is None:
            return search(p, now)
        key = (ident, question, now)
        got = answers.get(key, _UNKNOWN)
        if got is _UNKNOWN:
            got = answers[key] = search(p, now)
        return got  # type: ignore[no-any-return]

    return change


def included_value(inc: Filter) -> Evaluator:
    """An included audience's value (true, false, or unknown: qlbridge's "not ok"), asked once
    per instant within one evaluation (see ``_MEMO``)."""
    matches = inc.root.evaluate
    ident = id(inc)

    def evaluate(p: Profile, now: int) -> Any:
        answers = _MEMO.get()
        if answers is None:
            v = matches(p, now)
            return v if v is True or v is False else None
        key = (ident, ASKED_MATCH, now)
        got = answers.get(key, _UNKNOWN)
        if got is _UNKNOWN:
            v = matches(p, now)
            got = answers[key] = v if v is True or v is False else None
        return got

    return evaluate


@contextmanager
def one_evaluation() -> Iterator[None]:
    """Share included audiences' answers while the block evaluates one (unchanging) profile.

    Filter.matches and Filter.next_change open one themselves; explain, which calls many nodes'
    closures, holds one around all of them.
    """
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


class Filter:
    """A compiled FILTER statement: call :meth:`matches` and :meth:`next_change` per profile."""

    __slots__ = (
        "_chain",
        "_evaluate",
        "_next_true_change",
        "_scoped",
        "_unbudgeted",
        "alias",
        "depth",
        "events",
        "fields",
        "includes",
        "needs",
        "root",
        "statement",
        "text",
        "time_dependent",
        "unscoped_evaluate",
    )

    def __init__(
        self,
        statement: Statement,
        root: CNode,
        fields: frozenset[str],
        events: frozenset[str],
        includes: frozenset[str],
        depth: int,
        chain: tuple[str, ...],
    ) -> None:
        self.statement = statement
        self.text = statement.text
        self.alias = statement.alias
        self.root = root
        self.fields = fields
        self.events = events
        self.includes = includes
        self.time_dependent = root.timing != Timing.STATIC
        self.depth = depth
        """How deep its INCLUDE chain goes (0: it includes nothing)."""
        self._chain = chain
        self._evaluate = root.evaluate
        self._next_true_change = root.next_true_change
        self._scoped = bool(includes)
        self._unbudgeted = (
            not includes
            and root.next_true_change is not None
            and within_one_budget(root.next_true_change)
        )
        """Its search needs neither a memo nor a budget of its own (see :meth:`next_change`)."""
        self.unscoped_evaluate: Evaluator | None = None if includes else root.evaluate
        """The root's evaluator when the filter includes no audience (so no memo is needed):
        ``unscoped_evaluate(p, now) is True`` answers as :meth:`matches` does, one call
        shallower, for the drain's innermost loop."""
        self.needs: dict[str, int] = {}
        """Event name -> the most occurrences any timewindow() here (or included) counts."""

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"

    @property
    def chain(self) -> tuple[str, ...]:
        """The slugs along its deepest INCLUDE chain (for errors naming a too deep path)."""
        return self._chain

    def matches(self, profile: Profile, now: int) -> bool:
        """Does the profile belong to the audience at ``now`` (ns)?"""
        if not self._scoped or _MEMO.get() is not None:
            return self._evaluate(profile, now) is True
        token = _MEMO.set({})
        try:
            return self._evaluate(profile, now) is True
        finally:
            _MEMO.reset(token)

    def next_change(self, profile: Profile, now: int) -> int | None:
        """The earliest instant T > now at which ``matches`` flips with no new data, or None.

        Exact: matches(T - 1) == matches(now) != matches(T), and nothing flips in between. Only a
        filter whose answer needs more than a few thousand candidate instants to settle (calendar
        functions that keep changing without deciding, e.g.
        ``AND (dayofweek() == 1, dayofweek() == 2)``) gets an earlier "re-check" instant instead:
        nothing flips before it, and asking again then continues the search.
        """
        search = self._next_true_change
        if search is None:
            return None
        if self._unbudgeted:
            # Most time-dependent filters (a window, a date against now) include nothing and
            # search one loop of at most CAP < BUDGET candidates, so a fresh budget could never
            # run out: the same answer without setting and resetting two ContextVars per call
            # (several per drained event). Inside a larger search it still spends that budget.
            at = search(profile, now)
            if at is None or at <= LAST_INSTANT:
                return at
            return at if _BUDGET_LEFT.get() is not None else None
        if _BUDGET_LEFT.get() is not None:  # an INCLUDE inside a larger search shares its budget
            return search(profile, now)
        budget = _BUDGET_LEFT.set([BUDGET])
        scope = _MEMO.set({}) if self._scoped and _MEMO.get() is None else None
        try:
            at = search(profile, now)
        finally:
            if scope is not None:
                _MEMO.reset(scope)
            _BUDGET_LEFT.reset(budget)
        return at if at is not None and at <= LAST_INSTANT else None

    def next_false_change(self, profile: Profile, now: int) -> int | None:
        """When "the audience is false" next changes (what ``NOT INCLUDE`` asks of it; unknown is
        neither true nor false), searched under a budget as :meth:`next_change` is."""
        search = self.root.next_false_change
        if search is None:
            return None
        return budgeted(lambda: search(profile, now))
