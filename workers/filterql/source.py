"""A statement's source text: the exact slice each syntax node was parsed from, and one-line forms.

Explain shows every clause as written. The parser records where each node starts and ends, so a
clause is a slice of the text; shown on one line, its comments go and its white space collapses,
read by the grammar's own lexer (``parser.tokens``), so strings and quoted names stay as written.
"""

from __future__ import annotations

from lark.exceptions import LarkError

from workers.filterql.parser import tokens
from workers.filterql.syntax import Node, Statement

_AS_WRITTEN = frozenset(("STRING", "IDENT", "QIDENT"))
"""Tokens whose inner white space is part of their value (``"a  b"``, ``` `a  b` ```)."""


class Source:
    """The text of one statement, and the slice of it any of its syntax nodes spans."""

    __slots__ = ("offset", "text")

    def __init__(self, statement: Statement) -> None:
        self.text = statement.text
        self.offset = statement.offset

    def slice(self, node: Node | None, fallback: str) -> str:
        """The node as written (parentheses around it left out), or ``fallback`` without one."""
        if node is None:
            return fallback
        start, end = node.span.start - self.offset, node.span.end - self.offset
        if not 0 <= start < end <= len(self.text):
            return fallback
        return self.text[start:end]


def one_line(text: str, limit: int | None = None) -> str:
    """FilterQL text on one line: comments dropped, each run of white space outside strings and
    quoted names one space, none just inside brackets. ``limit``: stop once more than that many
    characters are out (for a text about to be cut anyway)."""
    pieces: list[str] = []
    size = end = 0
    try:
        for tok in tokens(text):
            word = str(tok) if tok.type in _AS_WRITTEN else " ".join(str(tok).split())
            start = tok.start_pos or 0
            if start > end and pieces and pieces[-1][-1] not in "([" and word[0] not in ")]":
                pieces.append(" ")
                size += 1
            pieces.append(word)
            size += len(word)
            end = tok.end_pos or start
            if limit is not None and size > limit:
                return "".join(pieces)
    except LarkError:  # not FilterQL from here on (a label such as "(…)"): keep it as it is
        rest = " ".join(text[end:].split())
        if rest:
            pieces.append((" " if pieces and text[end].isspace() else "") + rest)
    return "".join(pieces)
