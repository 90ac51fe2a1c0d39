"""The parsed form of a FilterQL statement: plain, immutable nodes with source positions.

The parser builds these; the compiler turns them into closures once, and the reference walker
interprets them directly (it is the slow oracle the compiled form is checked against).
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
class Literal:
    """A constant: str, int, float, bool, or None for NULL."""

    value: Any
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Ident:
    """A field reference: ``segments`` are (text, quoted) pairs; unquoted neighbours may join by '.'."""

    segments: tuple[tuple[str, bool], ...]
    text: str
    pos: Pos = field(default_factory=Pos, compare=False)

    @property
    def name(self) -> str:
        """The dotted name as written, quotes removed (also the event name for timewindow)."""
        return ".".join(s for s, _q in self.segments)


@dataclass(frozen=True, slots=True)
class ListLit:
    """``(a, b, c)`` after IN/INTERSECTS, or a ``[...]`` array."""

    items: tuple[Node, ...]
    pos: Pos = field(default_factory=Pos, compare=False)
    bracket: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    """A function call ``name(args…)``; the name is lower-cased."""

    name: str
    args: tuple[Node, ...]
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    arg: Node
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Exists:
    arg: Node
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Logic:
    """AND / OR over any number of phrases (groups and infix chains both end up here)."""

    op: str
    args: tuple[Node, ...]
    pos: Pos = field(default_factory=Pos, compare=False)
    infix: bool = field(default=False, compare=False)
    symbols: tuple[bool, ...] = field(default=(), compare=False)
    """Infix only: True where the operator before part i + 1 was written ``&&`` / ``||``."""


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with op one of == != < <= > >=."""

    op: str
    left: Node
    right: Node
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Binary:
    """IN, INTERSECTS, CONTAINS, LIKE (``negated`` for the NOT forms)."""

    op: str
    left: Node
    right: Node
    negated: bool = False
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Between:
    arg: Node
    lo: Node
    hi: Node
    negated: bool = False
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: Node
    right: Node
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class Include:
    name: str
    pos: Pos = field(default_factory=Pos, compare=False)


@dataclass(frozen=True, slots=True)
class MatchAll:
    pos: Pos = field(default_factory=Pos, compare=False)


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


@dataclass(frozen=True, slots=True)
class Statement:
    """One ``FILTER … [FROM x] [LIMIT n] [WITH k=v, …] [ALIAS slug]`` statement."""

    filter: Node
    text: str
    alias: str | None = None
    from_: str | None = None
    limit: int | None = None
    with_: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    pos: Pos = field(default_factory=Pos, compare=False)

    @property
    def with_map(self) -> dict[str, Any]:
        return dict(self.with_)
