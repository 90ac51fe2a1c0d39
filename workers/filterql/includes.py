"""INCLUDE: one audience reading another's answer, resolved at compile time, cycles refused.

The included audience is compiled once (by ``compile_set``'s resolver) and its value read through
the evaluation's memo, so naming it many times costs one evaluation per instant. A chain of
includes is followed while compiling: a cycle, or a chain deeper than MAX_INCLUDE_DEPTH, is a
FilterQLError naming the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from workers.filterql.errors import FilterQLError
from workers.filterql.filter import (
    ASKED_FALSE_CHANGE,
    ASKED_TRUE_CHANGE,
    Filter,
    included_value,
    memoized,
)
from workers.filterql.next_change import phrase_step
from workers.filterql.node import CNode, IncludedAudience, Timing
from workers.filterql.syntax import Include, Pos

if TYPE_CHECKING:
    from workers.filterql.compiler import Compiler

MAX_INCLUDE_DEPTH = 100

Resolver = Callable[[str], Filter]
"""``resolve(slug)``: the compiled filter of an INCLUDEd audience (FilterQLError if unknown)."""

_STACK: ContextVar[tuple[str, ...]] = ContextVar("filterql_include_stack", default=())
"""The slugs being compiled, outermost first (cycle detection across nested compiles)."""


@contextmanager
def compiling(slug: str) -> Iterator[None]:
    """Mark ``slug`` as the audience being compiled at the top, so a cycle back to it is seen."""
    token = _STACK.set((slug.lower(),))
    try:
        yield
    finally:
        _STACK.reset(token)


def compile_include(c: Compiler, node: Include) -> CNode:
    """INCLUDE is the other audience's value: true, false, or unknown (qlbridge's "not ok")."""
    inc = resolve_include(c, node.name, node.pos)
    ident = id(inc)
    evaluate = included_value(inc)
    out = CNode("include", node.name, node.pos, evaluate, detail=IncludedAudience(inc))
    if inc.time_dependent:
        out.timing = Timing.STEP
        out.next_true_change = memoized(ident, ASKED_TRUE_CHANGE, inc.next_change)
        out.next_false_change = memoized(ident, ASKED_FALSE_CHANGE, inc.next_false_change)
        phrase_step(out)
    return out


def resolve_include(c: Compiler, slug: str, pos: Pos) -> Filter:
    """The included audience's compiled filter; records it in the compiler's includes."""
    if c.resolve is None:
        raise c.error(
            f"INCLUDE {slug}: audiences can only be included where other audiences are known", pos
        )
    stack = _STACK.get()
    key = slug.lower()
    if key in stack:
        path = " -> ".join((*stack[stack.index(key) :], key))
        raise c.error(f"INCLUDE {slug} makes a cycle: {path}", pos)
    token = _STACK.set((*stack, key))
    try:
        inc = c.resolve(slug)
    except FilterQLError as exc:
        msg = (
            exc.message if exc.message.startswith("INCLUDE ") else f"INCLUDE {slug}: {exc.message}"
        )
        raise c.error(msg, pos) from None
    except LookupError:  # a resolver that raised KeyError for an unknown slug
        raise c.error(f"INCLUDE {slug}: unknown audience {slug!r}", pos) from None
    except RecursionError:
        raise c.error(f"INCLUDE {slug}: the includes are nested too deeply", pos) from None
    finally:
        _STACK.reset(token)
    if not isinstance(inc, Filter):
        raise c.error(f"INCLUDE {slug}: the resolver did not return a compiled filter", pos)
    if inc.depth + 1 > MAX_INCLUDE_DEPTH:
        path = " -> ".join((*stack, key, *(s.lower() for s in inc.chain)))
        raise c.error(
            f"INCLUDE {slug}: includes nest deeper than {MAX_INCLUDE_DEPTH} levels ({path})", pos
        )
    c.includes.add(slug)
    c.included.append(inc)
    if inc.depth + 1 > c.depth:
        c.depth = inc.depth + 1
        c.chain = (slug, *inc.chain)
    return inc
