"""The parsed form of a FilterQL statement: plain, immutable nodes that know where they stand.

The parser builds these; the compiler turns them into closures once, and the reference walker
interprets them directly (it is the slow oracle the compiled form is checked against). Every node
keeps its position (for errors) and its span in the text, so explain shows a clause by slicing the
source instead of reading it a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Pos:
    """1-based line and column of a node's first character."""

    line: int = 1
    column: int = 1


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node's text lies in the parsed text, as character offsets ``[start, end)``.

    ``outer_start``/``outer_end`` widen it over parentheses written around the node, which the tree
    does not keep (``(a OR b) AND c``: the OR's own text is ``a OR b``; the AND's starts at ``(``).
    """

    start: int
    end: int
    outer_start: int
    outer_end: int

    @staticmethod
    def of(start: int, end: int) -> Span:
        return Span(start, end, start, end)


@dataclass(frozen=True, slots=True, kw_only=True)
class Located:
    """What every node carries beside its meaning: where it starts and the text it spans."""

    pos: Pos = field(compare=False)
    span: Span = field(compare=False)


@dataclass(frozen=True, slots=True)
class Literal(Located):
    """A constant: str, int, float, bool, or None for NULL."""

    value: Any


@dataclass(frozen=True, slots=True)
class Ident(Located):
    """A field reference: ``segments`` are (text, quoted) pairs; unquoted neighbours may join by '.'."""

    segments: tuple[tuple[str, bool], ...]
    text: str

    @property
    def name(self) -> str:
        """The dotted name as written, quotes removed (also the event name for timewindow)."""
        return ".".join(s for s, _q in self.segments)


@dataclass(frozen=True, slots=True)
class ListLit(Located):
    """``(a, b, c)`` after IN/INTERSECTS, or a ``[...]`` array (``bracket``)."""

    items: tuple[Node, ...]
    bracket: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Call(Located):
    """A function call ``name(args…)``; the name is lower-cased."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not(Located):
    arg: Node


@dataclass(frozen=True, slots=True)
class Exists(Located):
    arg: Node


@dataclass(frozen=True, slots=True)
class Logic(Located):
    """AND / OR over any number of phrases (groups and infix chains both end up here)."""

    op: str
    args: tuple[Node, ...]
    infix: bool = field(default=False, compare=False)
    symbols: tuple[bool, ...] = field(default=(), compare=False)
    """Infix only: True where the operator before part i + 1 was written ``&&`` / ``||``."""


@dataclass(frozen=True, slots=True)
class Operation(Located):
    """``left op right``: the shape comparisons, IN-like operators and arithmetic share."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Operation):
    """``left op right`` with op one of == != < <= > >=."""


@dataclass(frozen=True, slots=True)
class Binary(Operation):
    """IN, INTERSECTS, CONTAINS, LIKE (``negated`` for the NOT forms)."""

    negated: bool = False


@dataclass(frozen=True, slots=True)
class Arith(Operation):
    """``+ - * / %``."""


@dataclass(frozen=True, slots=True)
class Between(Located):
    arg: Node
    lo: Node
    hi: Node
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Include(Located):
    name: str


@dataclass(frozen=True, slots=True)
class MatchAll(Located):
    pass


Node = (
    Literal
    | Ident
    | ListLit
    | Call
    | Not
    | Exists
    | Logic
    | Compare
    | Binary
    | Between
    | Arith
    | Include
    | MatchAll
)


PHRASES = (Logic, Not, Compare, Binary, Between, Exists, Include)
"""The node types that are phrases (true, false or unknown) wherever they stand."""


def peel_not(node: Not) -> tuple[Node, int]:
    """The phrase under a chain of NOTs and one-member groups, and how many NOTs there were
    (qlbridge's NOT over an INCLUDE depends on the count)."""
    core: Node = node
    flips = 0
    while True:
        if isinstance(core, Not):
            flips += 1
            core = core.arg
        elif isinstance(core, Logic) and not core.infix and len(core.args) == 1:
            core = core.args[0]
        else:
            return core, flips


@dataclass(frozen=True, slots=True)
class Statement:
    """One ``FILTER … [FROM x] [LIMIT n] [WITH k=v, …] [ALIAS slug]`` statement.

    ``text`` is the statement alone; ``offset`` is where it starts in the text it was parsed from
    (its nodes' spans count from there).
    """

    filter: Node
    text: str
    alias: str | None = None
    from_: str | None = None
    limit: int | None = None
    with_: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    pos: Pos = field(default_factory=Pos, compare=False)
    offset: int = field(default=0, compare=False)

    @property
    def with_map(self) -> dict[str, Any]:
        return dict(self.with_)
