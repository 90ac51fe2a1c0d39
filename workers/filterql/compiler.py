"""Compile parsed FilterQL into a tree of closures, and answer ``matches`` and ``next_change``.

Each syntax node becomes a :class:`CNode` holding the closure that computes its value for a
profile at an instant. Parents call their children's closures directly, so evaluating a profile is a
few dozen Python calls and no tree walking; the tree of CNodes stays around so an "explain" mode can
later call any node's own closure and show the same values that decided the answer.

Values are tri-state where a phrase is expected: True, False, or None ("unknown": a missing field,
a number where a phrase should be...). AND is false if any part is false, unknown if any part is
unknown, else true; OR is true if any part is true, else false (unknowns count as false, as in
qlbridge); NOT keeps unknown unknown; a filter matches only when its phrase is True.

Time: a node is STATIC (depends on the profile only), a CLOCK (a moving time: ``now()``, ``"now-7d"``)
or STEP (piecewise constant in time: ``daysago()``, ``yy()``, ``timewindow()`` and every phrase that
reads a moving value). Phrases know their exact next change; see :meth:`Filter.next_change`.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from workers.filterql import dates
from workers.filterql.dates import DateMathError, parse_datemath, rfc3339_ns
from workers.filterql.errors import FilterQLError
from workers.filterql.functions import FUNCTIONS, Function, daysago_of, time_of
from workers.filterql.glob import PatternTooLarge, compile_like
from workers.filterql.parser import parse_statements
from workers.filterql.syntax import (
    Arith,
    Between,
    Binary,
    Call,
    Compare,
    Exists,
    Ident,
    Include,
    ListLit,
    Literal,
    Logic,
    MatchAll,
    Node,
    Not,
    Pos,
    Statement,
)
from workers.filterql.timing import CAP, Clock
from workers.filterql.values import (
    BAD,
    CONTAINS,
    EQ,
    GE,
    GT,
    IN,
    LE,
    LIKE,
    LT,
    NE,
    NULL,
    OP_NAMES,
    DateMath,
    Lits,
    Time,
    arith,
    between,
    binop,
    field_value,
    infix,
    literal_value,
    resolve_path,
    str_to_number,
    to_number,
    to_time,
    truth,
)
from workers.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S

STATIC, CLOCK, STEP = 0, 1, 2
MAX_INCLUDE_DEPTH = 100
LAST_INSTANT = 253402300799_999_999_999
"""9999-12-31T23:59:59.999999999Z: a flip later than this is reported as never (RFC 3339 and the
due index cannot hold it)."""

Evaluator = Callable[[Profile, int], Any]
NextChange = Callable[[Profile, int], "int | None"]
Stepper = Callable[[Profile, int, "list[float] | None"], "int | None"]

_OPF: dict[int, Callable[[Any, Any], bool]] = {
    EQ: operator.eq,
    NE: operator.ne,
    LT: operator.lt,
    LE: operator.le,
    GT: operator.gt,
    GE: operator.ge,
}
_OP_TEXT = {EQ: "==", NE: "!=", LT: "<", LE: "<=", GT: ">", GE: ">="}


class CNode:
    """One compiled node: its closure, its children, and how its value moves with time.

    ``ev(profile, now)`` computes the value. A moving phrase also has ``nt(profile, now)`` and
    ``nf(profile, now)``: the exact next instant at which "the value is True" (resp. "is False")
    changes, or None if it never does with no new data. Keeping the two apart is what makes
    next_change exact through NOT and unknowns (NOT maps "is False" to "is True"). A STEP value has
    ``step(profile, t, thresholds)``: an instant > t by which its value may have changed, never
    later than the real change. A CLOCK has ``clock``.

    For explain (never read while evaluating): ``syntax`` is the syntax node the CNode was compiled
    from (its source slice), ``info`` holds what a closure captured and explain must show
    (timewindow: event, count, window and its occurrence reader; INCLUDE: the included Filter).
    """

    __slots__ = (
        "children",
        "clock",
        "ev",
        "info",
        "kind",
        "label",
        "nf",
        "nt",
        "period",
        "pos",
        "step",
        "syntax",
        "td",
    )

    def __init__(
        self,
        kind: str,
        label: str,
        pos: Pos,
        ev: Evaluator,
        children: tuple[CNode, ...] = (),
        td: int = STATIC,
    ) -> None:
        self.kind = kind
        self.label = label
        self.pos = pos
        self.ev = ev
        self.children = children
        self.td = td
        self.nt: NextChange | None = None
        self.nf: NextChange | None = None
        self.step: Stepper | None = None
        self.clock: Clock | None = None
        self.period: int | None = None
        self.syntax: Node | None = None
        self.info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"CNode({self.kind}, {self.label!r}, td={self.td})"


def _const(value: Any) -> Evaluator:
    def ev(p: Profile, now: int) -> Any:
        return value

    return ev


def _plain_text(s: str) -> bool:
    """A string compared as plain text only: not a number and not a date."""
    return str_to_number(s) is None and dates.parse_date(s) is None


def _is_number(v: Any) -> bool:
    return v.__class__ is int or v.__class__ is float


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v.__class__ is list:
            out.extend(e for e in v if e is not None)
        elif v is not None:
            out.append(v)
    return out


# -- the include stack (cycle detection across nested compiles) -------------------------------------

_STACK: ContextVar[tuple[str, ...]] = ContextVar("filterql_include_stack", default=())

BUDGET = 5000
"""Candidate instants one next_change call may examine in all (nested searches share it)."""
_BUDGET: ContextVar[list[int] | None] = ContextVar("filterql_budget", default=None)


_MEMO: ContextVar[dict[tuple[int, int, int], Any] | None] = ContextVar("filterql_memo", default=None)
"""Answers of included audiences during one evaluation of one profile: (filter, question, instant)
-> answer. ``a = AND (INCLUDE b, INCLUDE b)``, ``b = AND (INCLUDE c, INCLUDE c)``… would otherwise
evaluate the last audience 2^depth times; with it every included audience is asked once per
instant, however often it is named."""
_ASKED_MATCH, _ASKED_CHANGE, _ASKED_FALSE = 0, 1, 2
_UNKNOWN = object()


def _memoized(ident: int, question: int, fn: NextChange) -> NextChange:
    """An included audience's next change (of "is true" or of "is false"), asked once per
    instant within one evaluation (see ``_MEMO``)."""

    def nc(p: Profile, now: int) -> int | None:
        memo = _MEMO.get()
        if memo is None:
            return fn(p, now)
        key = (ident, question, now)
        got = memo.get(key, _UNKNOWN)
        if got is _UNKNOWN:
            got = memo[key] = fn(p, now)
        return got  # type: ignore[no-any-return]

    return nc


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


def _spend() -> bool:
    """Use one unit of the search budget; False once it is gone (answer with a re-check then)."""
    b = _BUDGET.get()
    if b is None:
        return True
    b[0] -= 1
    return b[0] > 0


class Filter:
    """A compiled FILTER statement: call :meth:`matches` and :meth:`next_change` per profile."""

    __slots__ = (
        "_chain",
        "_ev",
        "_nt",
        "_scoped",
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
        self.time_dependent = root.td != STATIC
        self.depth = depth
        self._chain = chain
        self._ev = root.ev
        self._nt = root.nt
        self._scoped = bool(includes)
        self.needs: dict[str, int] = {}
        """Event name -> the most occurrences any timewindow() here (or included) counts."""

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"

    def matches(self, profile: Profile, now: int) -> bool:
        """Does the profile belong to the audience at ``now`` (ns)?"""
        if not self._scoped or _MEMO.get() is not None:
            return self._ev(profile, now) is True
        token = _MEMO.set({})
        try:
            return self._ev(profile, now) is True
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
        nt = self._nt
        if nt is None:
            return None
        if _BUDGET.get() is not None:  # an INCLUDE inside a larger search shares its budget
            return nt(profile, now)
        token = _BUDGET.set([BUDGET])
        memo = _MEMO.set({}) if self._scoped and _MEMO.get() is None else None
        try:
            at = nt(profile, now)
        finally:
            if memo is not None:
                _MEMO.reset(memo)
            _BUDGET.reset(token)
        return at if at is not None and at <= LAST_INSTANT else None


def _root_nf(f: Filter) -> NextChange:
    """When an included audience's "is false" changes (its ``next_change`` is "is true")."""
    nf = f.root.nf

    def nc(p: Profile, now: int) -> int | None:
        if nf is None:
            return None
        if _BUDGET.get() is not None:
            return nf(p, now)
        token = _BUDGET.set([BUDGET])
        try:
            at = nf(p, now)
        finally:
            _BUDGET.reset(token)
        return at if at is not None and at <= LAST_INSTANT else None

    return nc


def node_next_change(node: CNode, profile: Profile, now: int) -> int | None:
    """The next instant T > now at which one phrase node's tri-state value changes, or None.

    For explain, which shows when each clause moves: the node's own exact searches ("is True"
    and "is False" change), under the same budget as :meth:`Filter.next_change`, so a clause whose
    calendar functions never settle gets a re-check instant, as a whole filter does.
    """
    nt, nf = node.nt, node.nf
    if nt is None or nf is None:
        return None
    token = _BUDGET.set([BUDGET]) if _BUDGET.get() is None else None
    try:
        a, b = nt(profile, now), nf(profile, now)
    finally:
        if token is not None:
            _BUDGET.reset(token)
    at = b if a is None else a if b is None or a < b else b
    return at if at is not None and at <= LAST_INSTANT else None


# -- timing helpers for leaves --------------------------------------------------------------------


def _leaf_timing(node: CNode, operands: tuple[CNode, ...], thresholdable: bool) -> None:
    """Give a moving leaf its ``nt``/``nf``/``step``: walk the instants where its operands cross.

    A clock operand crosses a static operand's value at an instant found by arithmetic; a step
    operand says when it may change next (jumping straight to a threshold when it can). Between two
    consecutive candidates the leaf cannot change, so checking its value at each candidate in turn
    finds the first real change exactly.
    """
    statics = tuple(o for o in operands if o.td == STATIC)
    clocks = tuple(o.clock for o in operands if o.td == CLOCK and o.clock is not None)
    steps = tuple(o.step for o in operands if o.td == STEP and o.step is not None)
    month_pairs = _clocks_may_cross(clocks)
    moving = [o for o in operands if o.td != STATIC]
    period = moving[0].period if len(moving) == 1 and moving[0].td == STEP else None
    ev = node.ev

    def prepare(p: Profile, now: int) -> tuple[list[int], list[float] | None]:
        values = _flat([o.ev(p, now) for o in statics])
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
        for c in clocks:
            x = c.next_reach(t, targets) if targets else None
            if x is not None and (best is None or x < best):
                best = x
        if month_pairs:
            x = dates.next_month_start(t)
            if best is None or x < best:
                best = x
        for s in steps:
            x = s(p, t, nums)
            if x is not None and (best is None or x < best):
                best = x
        return best

    def step(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        targets, nums = prepare(p, t)
        return candidate(p, t, targets, nums)

    def after(p: Profile, now: int, want: bool) -> int | None:
        """Next change of ``ev(...) is want``."""
        cur = ev(p, now) is want
        targets, nums = prepare(p, now)
        t = now
        for i in range(CAP):
            nxt = candidate(p, t, targets, nums)
            if nxt is None:
                return None
            if (ev(p, nxt) is want) is not cur:
                return nxt
            t = nxt
            if period is not None and i + 1 >= period:
                return None
            if not _spend():
                return candidate(p, t, targets, nums)  # re-check: nothing changes before it
        return t

    def nt(p: Profile, now: int) -> int | None:
        return after(p, now, True)

    def nf(p: Profile, now: int) -> int | None:
        return after(p, now, False)

    node.td = STEP
    node.nt = nt
    node.nf = nf
    node.step = step
    node.period = period


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


def _phrase_step(node: CNode) -> None:
    """A moving phrase's value changes when "is True" or "is False" does: that is its step."""
    nt, nf = node.nt, node.nf
    assert nt is not None and nf is not None

    def step(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        a, b = nt(p, t), nf(p, t)
        if a is None:
            return b
        return a if b is None or a < b else b

    node.step = step


# -- the compiler ---------------------------------------------------------------------------------


Resolver = Callable[[str], Filter]


class _Compiler:
    """Compiles one statement; collects the fields, events and includes it reads."""

    def __init__(self, statement: Statement, text: str, resolve: Resolver | None) -> None:
        self.statement = statement
        self.text = text
        self.resolve = resolve
        self.fields: set[str] = set()
        self.events: set[str] = set()
        self.includes: set[str] = set()
        self.included: list[Filter] = []
        self.needs: dict[str, int] = {}
        self.depth = 0
        self.chain: tuple[str, ...] = ()

    def error(self, message: str, pos: Pos) -> FilterQLError:
        return FilterQLError(message, line=pos.line, column=pos.column, text=self.text)

    # -- entry --------------------------------------------------------------------------------
    def build(self) -> Filter:
        body = self.statement.filter
        if isinstance(body, MatchAll) or (
            isinstance(body, Ident) and body.segments == (("match_all", False),)
        ):
            root = CNode("match_all", "*", body.pos, _const(True))
            root.syntax = body
        else:
            root = self.phrase(body)
        assert root.td == STATIC or root.nt is not None, "every moving phrase knows its next change"
        for f in self.included:
            self.fields |= f.fields
            self.events |= f.events
            for name, need in f.needs.items():
                self.needs[name] = max(self.needs.get(name, 0), need)
        out = Filter(
            self.statement,
            root,
            frozenset(self.fields),
            frozenset(self.events),
            frozenset(self.includes),
            self.depth,
            self.chain,
        )
        out.needs = self.needs
        return out

    # -- phrases (tri-state) ------------------------------------------------------------------
    def phrase(self, node: Node) -> CNode:
        out: CNode
        if isinstance(node, Logic):
            out = self.logic(node)
        elif isinstance(node, Not):
            out = self.not_phrase(node)
        elif isinstance(node, Compare):
            out = self.compare(node)
        elif isinstance(node, Binary):
            out = self.binary(node)
        elif isinstance(node, Between):
            out = self.between(node)
        elif isinstance(node, Exists):
            out = self.exists(node.arg, node.pos)
        elif isinstance(node, Include):
            out = self.include(node)
        elif isinstance(node, MatchAll):
            out = CNode("match_all", "*", node.pos, _const(True))
        elif isinstance(node, Literal):
            raw = literal_value(node.value)
            out = CNode("literal", repr(node.value), node.pos, _const(truth(raw)))
            out.info = {"raw": raw}
        else:
            inner = self.value(node)
            out = inner if inner.kind in ("timewindow", "phrase") else self.truth_of(inner)
        if out.syntax is None:  # for explain: the source this phrase came from
            out.syntax = node
        return out

    def truth_of(self, inner: CNode) -> CNode:
        """A value used as a phrase: True/False stay; missing is unknown (None), any other value is
        BAD (neither true nor false)."""
        get = inner.ev

        def ev(p: Profile, now: int) -> Any:
            return truth(get(p, now))

        node = CNode("truth", inner.label, inner.pos, ev, (inner,))
        if inner.td == CLOCK:
            node.ev = _const(BAD)
        elif inner.td == STEP:
            _leaf_timing(node, (inner,), False)
        return node

    def not_phrase(self, node: Not) -> CNode:
        """NOT as qlbridge reads it: over an INCLUDE (through single-member groups, which are their
        member) it flips the INCLUDE's own negation; over anything else it negates the value."""
        core: Node = node
        flips = 0
        while True:
            if isinstance(core, Not):
                flips += 1
                core = core.arg
            elif isinstance(core, Logic) and not core.infix and len(core.args) == 1:
                core = core.args[0]
            else:
                break
        if not isinstance(core, Include):
            return self.negate(self.phrase(node.arg), node.pos, "NOT")
        inc = self.include(core)
        inc.syntax = core
        if flips % 2 == 0:
            return inc
        get = inc.ev

        def ev(p: Profile, now: int) -> Any:
            return get(p, now) is not True

        out = CNode("not", "NOT", node.pos, ev, (inc,), inc.td)
        if inc.td:
            out.nt = out.nf = inc.nt
            out.step, out.period = inc.step, inc.period
        return out

    def negate(self, inner: CNode, pos: Pos, label: str) -> CNode:
        get = inner.ev

        def ev(p: Profile, now: int) -> Any:
            v = get(p, now)
            if v is True:
                return False
            return True if v is False else None

        node = CNode("not", label, pos, ev, (inner,), inner.td)
        if inner.td:
            node.nt, node.nf = inner.nf, inner.nt
            node.step = inner.step
            node.period = inner.period
        return node

    def logic(self, node: Logic) -> CNode:
        """AND / OR. A group of one is its member (qlbridge collapses it). In a group, AND stops at
        the first part that is not true (unknown or false, in order); infix ``a AND b`` is unknown
        only when every part is, else false unless all hold. OR is true if any part is."""
        if not node.infix and len(node.args) == 1:
            return self.phrase(node.args[0])
        kids = tuple(self.phrase(a) for a in node.args)
        evs = tuple(k.ev for k in kids)
        moving = tuple(k for k in kids if k.td)
        if node.infix:  # qlbridge's evalBinary sees a bare value itself, not its truth
            raw = tuple(_raw_ev(k) for k in kids)
            ev = _infix(raw, node.op == "AND", node.symbols)
        else:
            ev = _and(evs) if node.op == "AND" else _or(evs)
        out = CNode(node.op.lower(), node.op, node.pos, ev, kids, STEP if moving else STATIC)
        if moving:
            if node.infix:
                out.nt = _step_kids(ev, kids, True)
                out.nf = _step_kids(ev, kids, False)
            elif node.op == "AND":
                out.nt = _settle(ev, kids, True, "nt", all_needed=True)
                out.nf = _step_kids(ev, kids, False)
            else:
                out.nt = out.nf = _settle(ev, kids, True, "nt", all_needed=False)
            _phrase_step(out)
        return out

    def include(self, node: Include) -> CNode:
        """INCLUDE is the other audience's value: true, false, or unknown (qlbridge's "not ok")."""
        inc = self.resolve_include(node.name, node.pos)
        fev = inc._ev
        ident = id(inc)

        def ev(p: Profile, now: int) -> Any:
            memo = _MEMO.get()
            if memo is None:
                v = fev(p, now)
                return v if v is True or v is False else None
            key = (ident, _ASKED_MATCH, now)
            got = memo.get(key, _UNKNOWN)
            if got is _UNKNOWN:
                v = fev(p, now)
                got = memo[key] = v if v is True or v is False else None
            return got

        out = CNode("include", node.name, node.pos, ev)
        out.info = {"filter": inc}
        if inc.time_dependent:
            out.td = STEP
            out.nt = _memoized(ident, _ASKED_CHANGE, inc.next_change)
            out.nf = _memoized(ident, _ASKED_FALSE, _root_nf(inc))
            _phrase_step(out)
        return out

    def resolve_include(self, slug: str, pos: Pos) -> Filter:
        if self.resolve is None:
            raise self.error(
                f"INCLUDE {slug}: audiences can only be included where other audiences are known",
                pos,
            )
        stack = _STACK.get()
        key = slug.lower()
        if key in stack:
            path = " -> ".join((*stack[stack.index(key) :], key))
            raise self.error(f"INCLUDE {slug} makes a cycle: {path}", pos)
        token = _STACK.set((*stack, key))
        try:
            inc = self.resolve(slug)
        except FilterQLError as exc:
            msg = (
                exc.message
                if exc.message.startswith("INCLUDE ")
                else f"INCLUDE {slug}: {exc.message}"
            )
            raise self.error(msg, pos) from None
        except LookupError:  # a resolver that raised KeyError for an unknown slug
            raise self.error(f"INCLUDE {slug}: unknown audience {slug!r}", pos) from None
        except RecursionError:
            raise self.error(f"INCLUDE {slug}: the includes are nested too deeply", pos) from None
        finally:
            _STACK.reset(token)
        if not isinstance(inc, Filter):
            raise self.error(f"INCLUDE {slug}: the resolver did not return a compiled filter", pos)
        if inc.depth + 1 > MAX_INCLUDE_DEPTH:
            path = " -> ".join((*stack, key, *(c.lower() for c in inc._chain)))
            raise self.error(
                f"INCLUDE {slug}: includes nest deeper than {MAX_INCLUDE_DEPTH} levels ({path})",
                pos,
            )
        self.includes.add(slug)
        self.included.append(inc)
        if inc.depth + 1 > self.depth:
            self.depth = inc.depth + 1
            self.chain = (slug, *inc._chain)
        return inc

    # -- comparisons ----------------------------------------------------------------------------
    def compare(self, node: Compare) -> CNode:
        op = OP_NAMES[node.op]
        label = f"{_OP_TEXT[op]}"
        # NULL: "x == NULL" is true when x is missing, "x != NULL" when it is present.
        for this, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, Literal) and other.value is None:
                inner = self.value(this, time_pos=True)
                get = inner.ev
                if op == EQ:
                    ev = _null_eq(get, True)
                elif op == NE:
                    ev = _null_eq(get, False)
                else:
                    ev = _const(False)
                out = CNode("compare", label, node.pos, ev, (inner,))
                if inner.td == STEP:
                    _leaf_timing(out, (inner,), False)
                return out
        left = self.value(node.left, time_pos=True)
        right = self.value(node.right, time_pos=True)
        self.check_moving((left, right), node.pos)
        ev = _compare_ev(op, left, right, node.left)
        out = CNode("compare", label, node.pos, ev, (left, right))
        if left.td or right.td:
            _leaf_timing(out, (left, right), True)
        return out

    def check_moving(self, operands: tuple[CNode, ...], pos: Pos) -> None:
        """A moving time may meet static values or other clocks, not other moving values."""
        if any(o.td == CLOCK for o in operands) and any(o.td == STEP for o in operands):
            raise self.error(
                "a moving time (now(), date math) cannot be compared with another value that "
                "changes with time",
                pos,
            )

    def binary(self, node: Binary) -> CNode:
        op = node.op
        left = self.value(node.left)
        right = self.value(node.right)
        for o in (left, right):
            if o.td == CLOCK:
                raise self.error(
                    f"{op} cannot use a moving time (now(), date math); compare it instead",
                    node.pos,
                )
        if op in ("IN", "INTERSECTS"):
            ev = _member_ev(left, right, node.left, node.right)
            thresholdable = True
        elif op == "CONTAINS":
            ev = _contains_ev(left, right, node.left, node.right)
            thresholdable = False
        else:
            try:
                ev = _like_ev(left, right, node.left, node.right)
            except PatternTooLarge as exc:
                raise self.error(str(exc), node.right.pos) from None
            thresholdable = False
        out = CNode(op.lower(), op, node.pos, ev, (left, right))
        out.syntax = node
        if left.td or right.td:
            _leaf_timing(out, (left, right), thresholdable)
        if node.negated:
            return self.negate(out, node.pos, f"NOT {op}")
        return out

    def between(self, node: Between) -> CNode:
        a = self.value(node.arg, time_pos=True)
        lo = self.value(node.lo, time_pos=True)
        hi = self.value(node.hi, time_pos=True)
        self.check_moving((a, lo, hi), node.pos)
        ga, gl, gh = a.ev, lo.ev, hi.ev

        def ev(p: Profile, now: int) -> Any:
            return between(ga(p, now), gl(p, now), gh(p, now))

        out = CNode("between", "BETWEEN", node.pos, ev, (a, lo, hi))
        out.syntax = node
        if a.td or lo.td or hi.td:
            _leaf_timing(out, (a, lo, hi), True)
        if node.negated:
            return self.negate(out, node.pos, "NOT BETWEEN")
        return out

    def exists(self, arg: Node, pos: Pos, call: bool = False) -> CNode:
        """``EXISTS x``: any present value. ``exists(x)`` (``call``) is qlbridge's builtin, which
        also says false for a map that does not hold only ints."""
        inner = self.value(arg)
        if inner.td == CLOCK:
            return CNode("exists", "EXISTS", pos, _const(True), (inner,))
        get = inner.ev
        ev: Evaluator
        if call:
            fn = FUNCTIONS["exists"].impl

            def ev(p: Profile, now: int) -> Any:
                return fn(get(p, now))

        elif (
            isinstance(arg, Ident)
            and len(arg.segments) == 1
            and not arg.segments[0][1]
            and (arg.segments[0][0] not in _SPECIAL)
        ):
            name = arg.segments[0][0]

            def ev(p: Profile, now: int) -> Any:
                return p.fields.get(name) is not None

        else:

            def ev(p: Profile, now: int) -> Any:
                v = get(p, now)
                return v is not None and v is not NULL

        out = CNode("exists", "EXISTS", pos, ev, (inner,))
        if inner.td == STEP:
            _leaf_timing(out, (inner,), False)
        return out

    # -- values -----------------------------------------------------------------------------------
    def value(self, node: Node, time_pos: bool = False) -> CNode:
        out: CNode
        if isinstance(node, Literal):
            v = node.value
            dm: tuple[int, int] | None = None
            if time_pos and isinstance(v, str):
                try:
                    dm = parse_datemath(v)
                except DateMathError as exc:
                    raise self.error(str(exc), node.pos) from None
            if dm is not None:
                out = self.clock_node(Clock(dm[0], dm[1]), repr(v), node.pos, text=v)
            else:
                out = CNode("literal", repr(v), node.pos, _const(literal_value(v)))
        elif isinstance(node, Ident):
            out = self.ident(node)
        elif isinstance(node, ListLit):
            out = self.list_value(node)
        elif isinstance(node, Call):
            out = self.call(node)
        elif isinstance(node, Arith):
            out = self.arith(node)
        elif isinstance(node, MatchAll):
            raise self.error("'*' (match all) can only be the whole filter", node.pos)
        elif isinstance(node, (Logic, Not, Compare, Binary, Between, Exists, Include)):
            return self.phrase(node)
        else:
            raise FilterQLError(f"cannot compile {type(node).__name__}", text=self.text)
        if out.syntax is None:  # for explain: the source this value came from
            out.syntax = node
        return out

    def clock_node(self, clock: Clock, label: str, pos: Pos, text: str | None = None) -> CNode:
        """A moving time. ``text``: it is a date math literal, which qlbridge holds as text (read as a
        date only against a date), so its value is a DateMath; otherwise (now(), todate()) a Time."""
        fixed, months = clock.fixed, clock.months
        ev: Evaluator
        if text is not None:
            if months:

                def ev(p: Profile, now: int) -> Any:
                    return DateMath(dates.add_months(now, months) + fixed, text)

            else:

                def ev(p: Profile, now: int) -> Any:
                    return DateMath(now + fixed, text)

        elif months:

            def ev(p: Profile, now: int) -> Any:
                return Time(dates.add_months(now, months) + fixed)

        else:

            def ev(p: Profile, now: int) -> Any:
                return Time(now + fixed)

        node = CNode("clock", label, pos, ev, (), CLOCK)
        node.clock = clock
        if text is not None:
            node.info = {"datemath": text}
        return node

    def ident(self, node: Ident) -> CNode:
        segs = node.segments
        label = node.text
        if len(segs) == 1 and not segs[0][1] and segs[0][0] in _SPECIAL:
            attr = _SPECIAL[segs[0][0]]
            self.fields.add(segs[0][0])

            def ev_special(p: Profile, now: int) -> Any:
                ns = getattr(p, attr)
                return Time(ns) if ns else None

            return CNode("field", label, node.pos, ev_special)
        self.fields |= ident_roots(node)
        if len(segs) == 1:
            name = segs[0][0]
            rfc = dates._RFC_CACHE

            def ev(p: Profile, now: int) -> Any:
                v: Any = p.fields.get(name)
                c = v.__class__
                if c is str:
                    ns = rfc.get(v, _UNSEEN)
                    if ns is None:
                        return v
                    return field_value(v) if ns is _UNSEEN else Time(ns)
                return field_value(v) if c is list else v

            return CNode("field", label, node.pos, ev)
        texts = tuple(s for s, _q in segs)
        quoted = tuple(q for _s, q in segs)

        def ev_path(p: Profile, now: int) -> Any:
            return resolve_path(p.fields, texts, quoted, 0)

        return CNode("field", label, node.pos, ev_path)

    def list_value(self, node: ListLit) -> CNode:
        """A list written in the filter: a Lits (qlbridge's SliceValue). In ``[...]`` every number is
        a float, as qlbridge's ValueArray reads them."""
        items = tuple(self.value(i) for i in node.items)
        for it in items:
            if it.td != STATIC:
                raise self.error("a list cannot hold values that change with time", it.pos)
        if all(isinstance(i, Literal) for i in node.items):
            const = Lits(literal_value(i.value) for i in node.items if isinstance(i, Literal))
            if node.bracket:
                const = Lits(float(x) if x.__class__ is int else x for x in const)
            return CNode("list", "(…)", node.pos, _const(const), items)
        evs = tuple(i.ev for i in items)

        def ev(p: Profile, now: int) -> Any:
            return Lits(f(p, now) for f in evs)

        return CNode("list", "(…)", node.pos, ev, items)

    def arith(self, node: Arith) -> CNode:
        left, right = self.value(node.left), self.value(node.right)
        for o in (left, right):
            if o.td == CLOCK:
                raise self.error(
                    "arithmetic on a moving time (now(), date math) is not supported", node.pos
                )
        gl, gr, op = left.ev, right.ev, node.op

        def ev(p: Profile, now: int) -> Any:
            return arith(op, gl(p, now), gr(p, now))

        out = CNode("arith", op, node.pos, ev, (left, right))
        _derive_step(out, (left, right))
        return out

    def call(self, node: Call) -> CNode:
        fn = FUNCTIONS.get(node.name)
        if fn is None:
            raise self.error(f"unknown function {node.name}()", node.pos)
        n = len(node.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            if fn.max_args is None:
                want = f"at least {fn.min_args}"
            elif fn.min_args == fn.max_args:
                want = str(fn.min_args)
            else:
                want = f"{fn.min_args} to {fn.max_args}"
            raise self.error(f"{fn.name}() takes {want} argument(s), not {n}", node.pos)
        kind = fn.kind
        if kind == "timewindow":
            return self.timewindow(node)
        if kind == "now":
            return self.clock_node(Clock(0, 0), "now()", node.pos)
        if kind == "calendar":
            return self.calendar(node, fn)
        if kind == "daysago":
            return self.daysago(node)
        if kind == "exists":
            out = self.exists(node.args[0], node.pos, call=True)
            out.kind = "phrase"
            return out
        if kind == "todate" and n == 1:
            arg = self.value(node.args[0], time_pos=True)
            if arg.td == CLOCK and arg.clock is not None:
                return self.clock_node(arg.clock, f"todate({arg.label})", node.pos)
        args = tuple(self.value(a) for a in node.args)
        for a in args:
            if a.td == CLOCK:
                raise self.error(
                    f"{fn.name}() cannot take a moving time (now(), date math); compare the time "
                    "directly or use daysago()",
                    node.pos,
                )
        out = CNode("call", fn.name, node.pos, _call_ev(fn.impl, args), args)
        _derive_step(out, args)
        return out

    def calendar(self, node: Call, fn: Function) -> CNode:
        impl = fn.impl
        if node.args:  # a "now-1d" text here is no date math to qlbridge (only todate() is)
            arg = self.value(node.args[0])
        else:
            arg = self.clock_node(Clock(0, 0), "now()", node.pos)
        if arg.td != CLOCK or arg.clock is None:
            out = CNode("call", fn.name, node.pos, _call_ev(impl, (arg,)), (arg,))
            _derive_step(out, (arg,))
            return out
        clock, unit = arg.clock, fn.unit
        get = arg.ev

        def ev(p: Profile, now: int) -> Any:
            return impl(get(p, now))

        jump = _CALENDAR_JUMPS.get(fn.name) if not clock.months else None
        fixed = clock.fixed

        def step(p: Profile, t: int, nums: list[float] | None) -> int | None:
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

        out = CNode("call", fn.name, node.pos, ev, (arg,), STEP)
        out.step = step
        out.period = fn.period if not clock.months else None
        return out

    def daysago(self, node: Call) -> CNode:
        arg = self.value(node.args[0], time_pos=True)
        if arg.td == CLOCK and arg.clock is not None and not arg.clock.months:
            days = (-arg.clock.fixed) // NS_PER_DAY
            return CNode("call", "daysago", node.pos, _const(days), (arg,))
        if arg.td != STATIC:
            raise self.error("daysago() needs a date that does not itself move with time", node.pos)
        get = arg.ev

        def ev(p: Profile, now: int) -> Any:
            then = time_of(get(p, now))
            return None if then is None else daysago_of(then, now)

        def step(p: Profile, t: int, nums: list[float] | None) -> int | None:
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

        out = CNode("call", "daysago", node.pos, ev, (arg,), STEP)
        out.step = step
        return out

    def timewindow(self, node: Call) -> CNode:
        what, n_node, d_node = node.args
        if isinstance(what, Ident):
            name = what.name
            roots = ident_roots(what)
            fallback = self.ident(what).ev
        elif isinstance(what, Literal) and isinstance(what.value, str):
            name = what.value
            roots = {name}
            fallback = _field_getter(name)
        else:
            raise self.error(
                "timewindow() takes an event name first: timewindow(purchase, 2, 7)", node.pos
            )
        if not (isinstance(n_node, Literal) and _is_number(n_node.value) and n_node.value >= 1):
            raise self.error(
                "timewindow() needs a count of at least 1 as its second argument", n_node.pos
            )
        if not (isinstance(d_node, Literal) and _is_number(d_node.value) and d_node.value > 0):
            raise self.error(
                "timewindow() needs a positive number of days as its third argument", d_node.pos
            )
        need = math.ceil(n_node.value)
        span = d_node.value * NS_PER_DAY
        if isinstance(span, float) and not math.isfinite(span):
            raise self.error("timewindow() days are out of range", d_node.pos)
        window = round(span)
        self.events.add(name)
        self.needs[name] = max(self.needs.get(name, 0), need)
        self.fields |= roots

        def times(p: Profile) -> list[int]:
            ts = p.occurrences.get(name)
            if ts is not None:
                return ts
            return _times_from_field(fallback(p, 0))

        def ev(p: Profile, now: int) -> Any:
            ts = times(p)
            return len(ts) >= need and ts[-need] + window > now

        def nc(p: Profile, now: int) -> int | None:
            ts = times(p)
            if len(ts) < need:
                return None
            end = ts[-need] + window
            return end if end > now else None

        out = CNode(
            "timewindow",
            f"timewindow({name}, {n_node.value}, {d_node.value})",
            node.pos,
            ev,
            (),
            STEP,
        )
        out.nt = out.nf = nc
        _phrase_step(out)
        out.info = {"event": name, "need": need, "days": d_node.value, "window": window}
        out.info["times"] = times
        return out


_SPECIAL = {"_created": "created", "_modified": "modified"}


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


def ident_roots(node: Ident) -> set[str]:
    """Root field names an identifier may read: ``a.b.c`` may be key "a", "a.b" or "a.b.c"."""
    segs = node.segments
    if segs[0][1]:
        return {segs[0][0]}
    roots: set[str] = set()
    acc: list[str] = []
    for text, quoted in segs:
        if quoted:
            break
        acc.append(text)
        roots.add(".".join(acc))
    return roots


def _field_getter(name: str) -> Evaluator:
    def ev(p: Profile, now: int) -> Any:
        return p.fields.get(name)

    return ev


def _times_from_field(v: Any) -> list[int]:
    """A field used by timewindow(): a date or a list of dates, sorted."""
    if v is None:
        return []
    items = v if v.__class__ is list else [v]
    out = sorted(ns for ns in (to_time(e) for e in items if e is not None) if ns is not None)
    return out


def _derive_step(node: CNode, args: tuple[CNode, ...]) -> None:
    """A value computed from step values moves when any of them may move."""
    moving = tuple(a for a in args if a.td == STEP and a.step is not None)
    if not moving:
        return
    steps = tuple(a.step for a in moving if a.step is not None)

    def step(p: Profile, t: int, _nums: list[float] | None) -> int | None:
        best: int | None = None
        for s in steps:
            x = s(p, t, None)
            if x is not None and (best is None or x < best):
                best = x
        return best

    node.td = STEP
    node.step = step
    node.period = moving[0].period if len(moving) == 1 else None


def _call_ev(impl: Callable[..., Any], args: tuple[CNode, ...]) -> Evaluator:
    if len(args) == 1:
        g0 = args[0].ev

        def ev1(p: Profile, now: int) -> Any:
            return impl(g0(p, now))

        return ev1
    if len(args) == 2:
        g0, g1 = args[0].ev, args[1].ev

        def ev2(p: Profile, now: int) -> Any:
            return impl(g0(p, now), g1(p, now))

        return ev2
    evs = tuple(a.ev for a in args)

    def evn(p: Profile, now: int) -> Any:
        return impl(*[g(p, now) for g in evs])

    return evn


_NO_PROFILE = Profile("")
_UNSEEN: Any = object()


def _null_eq(get: Evaluator, want_missing: bool) -> Evaluator:
    def ev(p: Profile, now: int) -> Any:
        return (get(p, now) is None) is want_missing

    return ev


def _and(evs: tuple[Evaluator, ...]) -> Evaluator:
    """A group AND, as qlbridge's ``walkBoolean``: the first part that is not true decides (false,
    or unknown)."""
    if len(evs) == 2:
        a, b = evs

        def ev2(p: Profile, now: int) -> Any:
            x = a(p, now)
            if x is not True:
                return False if x is False else None
            y = b(p, now)
            return y if y is True or y is False else None

        return ev2

    def ev(p: Profile, now: int) -> Any:
        for f in evs:
            x = f(p, now)
            if x is not True:
                return False if x is False else None
        return True

    return ev


def _or(evs: tuple[Evaluator, ...]) -> Evaluator:
    """A group OR: true if any part is; unknown parts count as false."""

    def ev(p: Profile, now: int) -> Any:
        return any(f(p, now) is True for f in evs)

    return ev


def _raw_ev(k: CNode) -> Evaluator:
    """What infix AND / OR reads of a part: a bare value itself, else the phrase's answer."""
    if k.kind == "truth":
        return k.children[0].ev
    if k.kind == "literal" and k.info is not None:
        return _const(k.info["raw"])
    return k.ev


def _infix(evs: tuple[Evaluator, ...], is_and: bool, symbols: tuple[bool, ...]) -> Evaluator:
    """Infix ``a AND b`` / ``a OR b`` (``&&``, ``||``), folded from the left as qlbridge's
    ``evalBinary`` does; ``symbols[i]`` tells ``&&`` from ``AND`` before part i + 1."""

    def ev(p: Profile, now: int) -> Any:
        acc = evs[0](p, now)
        for i in range(1, len(evs)):
            acc = infix(is_and, symbols[i - 1], acc, evs[i](p, now))
        return acc

    return ev


def _step_kids(ev: Evaluator, kids: tuple[CNode, ...], want: bool) -> NextChange:
    """Exact next change of "the phrase is ``want``" for a phrase that depends on its parts' values
    in order: between two instants where some part changes, nothing can change."""
    moving = tuple(k for k in kids if k.td)
    fns = tuple(f for k in moving for f in (k.nt, k.nf) if f is not None)

    def earliest(p: Profile, t: int) -> int | None:
        best: int | None = None
        for f in fns:
            x = f(p, t)
            if x is not None and (best is None or x < best):
                best = x
        return best

    def nc(p: Profile, now: int) -> int | None:
        cur = ev(p, now) is want
        t = now
        for _ in range(CAP):
            best = earliest(p, t)
            if best is None:
                return None
            if (ev(p, best) is want) is not cur:
                return best
            t = best
            if not _spend():
                return earliest(p, t)
        return t

    return nc


def _settle(
    ev: Evaluator, kids: tuple[CNode, ...], want: bool, attr: str, all_needed: bool
) -> NextChange:
    """Exact next change of "AND/OR is ``want``", from the children's own "is ``want``" changes.

    ``all_needed``: the node is ``want`` only when every child is (AND is True); otherwise it is
    ``want`` when any child is (AND is False, OR is True). While that condition holds for all
    children, the first child to change ends it; while it holds through one child that never
    changes, nothing can end it (and while it fails through one such child, nothing can start it).
    Otherwise step from one child change to the next and look.
    """
    moving = tuple(k for k in kids if k.td)
    fns = tuple(getattr(k, attr) for k in moving)
    kid_evs = tuple((k.ev, getattr(k, attr) if k.td else None) for k in kids)

    def earliest(p: Profile, t: int) -> int | None:
        best: int | None = None
        for f in fns:
            x = f(p, t)
            if x is not None and (best is None or x < best):
                best = x
        return best

    def nc(p: Profile, now: int) -> int | None:
        cur = ev(p, now) is want
        if cur is all_needed:
            # Every child agrees (all want / none want): the first child to change decides.
            return earliest(p, now)
        t = now
        for _ in range(CAP):
            best: int | None = None
            for kev, kfn in kid_evs:
                x = kfn(p, t) if kfn is not None else None
                if x is None:
                    if (kev(p, t) is want) is not all_needed:
                        return None  # this child holds the answer where it is, for ever
                elif best is None or x < best:
                    best = x
            if best is None:
                return None
            if (ev(p, best) is want) is not cur:
                return best
            t = best
            if not _spend():
                return earliest(p, t)  # re-check: no child changes before it
        return t

    return nc


# -- compare / member / like closures, with fast paths for the common shapes ---------------------


def _simple_field(node: Node) -> str | None:
    if isinstance(node, Ident) and len(node.segments) == 1 and not node.segments[0][1]:
        name = node.segments[0][0]
        if name not in _SPECIAL:
            return name
    return None


def _literal_of(node: CNode) -> Any:
    """The constant a literal CNode evaluates to."""
    return node.ev(_NO_PROFILE, 0)


def _compare_ev(op: int, left: CNode, right: CNode, lnode: Node) -> Evaluator:
    """``left op right`` (operand order kept: qlbridge's rules are not symmetric), with fast paths
    for a field against a number, a plain text, or date math."""
    field = _simple_field(lnode)
    if left.td == STATIC and right.kind == "literal":
        lit = _literal_of(right)
        if _is_number(lit):
            return _fast_number(op, lit, field, left.ev)
        if lit.__class__ is str and op in (EQ, NE) and _plain_text(lit):
            return _fast_text(op == EQ, lit, field, left.ev)
    if (
        left.td == STATIC
        and right.td == CLOCK
        and right.clock is not None
        and not right.clock.months
        and right.info is not None
    ):
        return _fast_date(op, right.clock.fixed, right.info["datemath"], field, left.ev)
    return _binop_ev(op, left, right)


def _binop_ev(op: int, left: CNode, right: CNode) -> Evaluator:
    gl, gr = left.ev, right.ev

    def ev(p: Profile, now: int) -> Any:
        return binop(op, gl(p, now), gr(p, now))

    return ev


def _fast_number(op: int, lit: Any, field: str | None, get: Evaluator) -> Evaluator:
    opf = _OPF[op]
    ne = op == NE
    if field is not None:

        def evf(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            c = v.__class__
            if c is int or c is float:
                return opf(v, lit)
            if v is None:
                return ne
            return binop(op, field_value(v), lit)

        return evf

    def ev(p: Profile, now: int) -> Any:
        v = get(p, now)
        c = v.__class__
        if c is int or c is float:
            return opf(v, lit)
        return binop(op, v, lit)

    return ev


def _fast_text(eq: bool, lit: str, field: str | None, get: Evaluator) -> Evaluator:
    """``x == "text"`` where the text is neither a number nor a date."""
    op = EQ if eq else NE
    if field is not None:

        def evf(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str:
                if v == lit:
                    return eq
                return None if rfc3339_ns(v) is not None else not eq
            if v is None:
                return not eq
            return binop(op, field_value(v), lit)

        return evf

    def ev(p: Profile, now: int) -> Any:
        v = get(p, now)
        if v.__class__ is str:
            return (v == lit) is eq
        return binop(op, v, lit)

    return ev


def _fast_date(op: int, fixed: int, text: str, field: str | None, get: Evaluator) -> Evaluator:
    """``x op "now-7d"`` (no months): a date field at whole seconds."""
    opf = _OPF[op]
    ne = op == NE
    rfc = dates._RFC_CACHE
    s = NS_PER_S

    def decide(v: Any, now: int) -> Any:
        if v is None:
            return ne
        return binop(op, v, DateMath(now + fixed, text))

    if field is not None:

        def evf(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str:
                t = rfc.get(v)
                if t is not None:
                    return opf(t // s, (now + fixed) // s)
            return decide(field_value(v), now)

        return evf

    def ev(p: Profile, now: int) -> Any:
        return decide(get(p, now), now)

    return ev


def _member_ev(left: CNode, right: CNode, lnode: Node, rnode: Node) -> Evaluator:
    field = _simple_field(lnode)
    if isinstance(rnode, ListLit) and right.kind == "list" and left.td == STATIC:
        values = _literal_of(right) if all(isinstance(i, Literal) for i in rnode.items) else None
        if values is not None and all(v.__class__ is str and _plain_text(v) for v in values):
            texts = frozenset(values)
            get = left.ev
            if field is not None:

                def evf(p: Profile, now: int) -> Any:
                    v = p.fields.get(field)
                    if v.__class__ is str:
                        if v in texts:
                            return True
                        return None if rfc3339_ns(v) is not None else False
                    if v is None:
                        return False
                    return binop(IN, field_value(v), values)

                return evf

            def evp(p: Profile, now: int) -> Any:
                v = get(p, now)
                if v.__class__ is str:
                    return v in texts
                return binop(IN, v, values)

            return evp
    return _binop_ev(IN, left, right)


def _contains_ev(left: CNode, right: CNode, lnode: Node, rnode: Node) -> Evaluator:
    field = _simple_field(lnode)
    if isinstance(rnode, Literal) and isinstance(rnode.value, str) and field is not None:
        sub = rnode.value
        rfc = dates._RFC_CACHE

        def evf(p: Profile, now: int) -> Any:
            v = p.fields.get(field)
            if v.__class__ is str and rfc.get(v, _UNSEEN) is None:
                return sub in v
            return binop(CONTAINS, field_value(v), sub)

        return evf
    return _binop_ev(CONTAINS, left, right)


def _like_ev(left: CNode, right: CNode, lnode: Node, rnode: Node) -> Evaluator:
    field = _simple_field(lnode)
    if isinstance(rnode, Literal) and isinstance(rnode.value, str):
        pattern = rnode.value
        match = compile_like(pattern).match  # PatternTooLarge: reported by the compiler
        if field is not None and left.td == STATIC:

            def evf(p: Profile, now: int) -> Any:
                v = p.fields.get(field)
                if v.__class__ is str and rfc3339_ns(v) is None:
                    got = match(v)
                    if got is not None:
                        return got
                if v is None:
                    return False
                return binop(LIKE, field_value(v), pattern)

            return evf
    return _binop_ev(LIKE, left, right)


# -- public entry points --------------------------------------------------------------------------


_MIN_RECURSION = 10_000


def _room_to_recurse() -> None:
    """Compiling follows INCLUDE chains (up to 100 audiences deep) and nested phrases by recursion;
    make sure Python allows it even when called from an already deep stack."""
    if sys.getrecursionlimit() < _MIN_RECURSION:
        sys.setrecursionlimit(_MIN_RECURSION)


def compile_statement(statement: Statement, text: str, resolve: Resolver | None = None) -> Filter:
    """Compile one parsed statement; ``text`` is its whole source (for error positions)."""
    _room_to_recurse()
    try:
        return _Compiler(statement, text, resolve).build()
    except RecursionError:
        raise FilterQLError("the filter is nested too deeply", text=text) from None


def compile_filter(text: str, resolve: Resolver | None = None) -> Filter:
    """Compile exactly one FILTER statement.

    ``resolve(slug)`` returns the compiled filter of an INCLUDEd audience (and raises
    FilterQLError for an unknown one); without it, INCLUDE is a compile error naming the slug.
    """
    statements = parse_statements(text)
    if len(statements) != 1:
        st = statements[1]
        raise FilterQLError(
            f"expected one FILTER statement, found {len(statements)}",
            line=st.pos.line,
            column=st.pos.column,
            text=text,
        )
    return compile_statement(statements[0], text, resolve)


def compile_set(texts: Mapping[str, str]) -> dict[str, Filter]:
    """Compile several audiences keyed by slug, resolving INCLUDE among them.

    Cycles and include chains deeper than 100 are refused with a FilterQLError naming the path.
    Slugs are matched exactly first, then ignoring case.
    """
    done: dict[str, Filter] = {}
    lower = {k.lower(): k for k in texts}

    def key_of(slug: str) -> str | None:
        if slug in texts:
            return slug
        return lower.get(slug.lower())

    def build(key: str) -> Filter:
        text = texts[key]
        statements = parse_statements(text)
        if len(statements) != 1:
            raise FilterQLError(
                f"audience {key}: expected one FILTER statement, found {len(statements)}", text=text
            )
        return compile_statement(statements[0], text, resolve)

    def resolve(slug: str) -> Filter:
        key = key_of(slug)
        if key is None:
            raise FilterQLError(f"unknown audience {slug!r}")
        if key not in done:
            done[key] = build(key)
        return done[key]

    for key in texts:
        if key in done:
            continue
        token = _STACK.set((key.lower(),))
        try:
            done[key] = build(key)
        except FilterQLError as exc:
            if not exc.message.startswith(f"audience {key}"):
                exc.message = f"audience {key}: {exc.message}"
                exc.args = (str(exc),)
            raise
        finally:
            _STACK.reset(token)
    return {k: done[k] for k in texts}
