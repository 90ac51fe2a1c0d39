"""Text to :mod:`workers.filterql.syntax` nodes, with lark (LALR, contextual lexer).

The transformer runs inline while lark reduces, so no parse tree is kept and deep nesting costs no
recursion here. Every lark failure becomes a :class:`FilterQLError` naming the line, the column and
what could have come there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, cast

from lark import Lark, Token, Transformer
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from workers.filterql.errors import FilterQLError
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
    Span,
    Statement,
)

GRAMMAR = Path(__file__).with_name("grammar.lark")

# What each terminal means to a person reading an error.
_DESCRIBE = {
    "FILTER": "FILTER",
    "FROM": "FROM",
    "LIMIT": "LIMIT",
    "WITH": "WITH",
    "ALIAS": "ALIAS",
    "AND": "AND",
    "OR": "OR",
    "AND_LP": "AND (",
    "OR_LP": "OR (",
    "OR_INFIX_LP": "OR (",
    "AND_INFIX_LP": "AND (",
    "NOT": "NOT",
    "NOT_IN": "NOT IN",
    "NOT_INTERSECTS": "NOT INTERSECTS",
    "NOT_CONTAINS": "NOT CONTAINS",
    "NOT_LIKE": "NOT LIKE",
    "NOT_BETWEEN": "NOT BETWEEN",
    "EXISTS": "EXISTS",
    "IN": "IN",
    "INTERSECTS": "INTERSECTS",
    "CONTAINS": "CONTAINS",
    "LIKE": "LIKE",
    "BETWEEN": "BETWEEN",
    "INCLUDE": "INCLUDE",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "NULL",
    "ANDAND": "'&&'",
    "OROR": "'||'",
    "CMP_OP": "a comparison (== != < <= > >=)",
    "_EQ": "'='",
    "BANG": "'!'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACK": "'['",
    "RBRACK": "']'",
    "_COMMA": "','",
    "SEMI": "';'",
    "FUNC_NAME": "a function call",
    "NUMBER": "a number",
    "STRING": 'a "string"',
    "IDENT": "a field name",
    "QIDENT": "a field name",
    "SLUG": "a name",
    "$END": "end of text",
}


def _describe(names: set[str] | frozenset[str] | list[str]) -> list[str]:
    out = {_DESCRIBE.get(n, n) for n in names}
    return sorted(out, key=lambda s: (s[0] in "'\"", s.lower()))


def _pos(*items: Any) -> Pos:
    """Position of the first thing in ``items`` that has one (a token or a node)."""
    for it in items:
        if isinstance(it, Token):
            return Pos(it.line or 1, it.column or 1)
        p = getattr(it, "pos", None)
        if isinstance(p, Pos):
            return p
    return Pos()


def _start(item: Token | Node) -> int:
    """Where a token or a node (with the parentheses around it) starts in the text."""
    if isinstance(item, Token):
        return item.start_pos or 0
    return item.span.outer_start


def _end(item: Token | Node | _Name) -> int:
    """Just past a token, a name, or a node (with the parentheses around it)."""
    if isinstance(item, Token):
        return item.end_pos or 0
    if isinstance(item, _Name):
        return item.end
    return item.span.outer_end


def _span(first: Token | Node, last: Token | Node | _Name) -> Span:
    return Span.of(_start(first), _end(last))


class _Name(NamedTuple):
    """A FROM / ALIAS / WITH / INCLUDE name, and where it ends."""

    text: str
    end: int


def _nodes(items: list[Any]) -> tuple[Node, ...]:
    """The child nodes of a reduction, without its bracket tokens."""
    return tuple(it for it in items if not isinstance(it, Token))


def unquote_string(raw: str) -> str:
    """A double-quoted literal's value, as qlbridge's lexer reads it: ``\\"`` and ``""`` are a
    quote; every other backslash stays as written (``"a\\nb"`` is a, backslash, n, b), so LIKE
    patterns can escape ``\\*``."""
    body = raw[1:-1]
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "\\" and i + 1 < n:
            nxt = body[i + 1]
            out.append('"' if nxt == '"' else ch + nxt)
            i += 2
        elif ch == '"' and i + 1 < n and body[i + 1] == '"':
            out.append('"')
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


_SEGMENT = re.compile(r"`([^`\n]*)`|([^.`]+)")


def split_ident(raw: str) -> tuple[tuple[str, bool], ...]:
    """``a.b.`c.d``` to (("a", False), ("b", False), ("c.d", True)); 'x' is one quoted segment."""
    if raw.startswith("'") and raw.endswith("'") and len(raw) >= 2:
        return ((raw[1:-1], True),)
    segs: list[tuple[str, bool]] = []
    for m in _SEGMENT.finditer(raw):
        if m.group(1) is not None:
            segs.append((m.group(1), True))
        else:
            segs.append((m.group(2), False))
    return tuple(segs)


MAX_NUMBER_DIGITS = 4000
"""Python refuses to turn longer digit strings into an int (and they only take time)."""


def _number(tok: Token) -> int | float:
    text = str(tok)
    if len(text) > MAX_NUMBER_DIGITS:
        raise FilterQLError(
            f"a number of {len(text):,} characters; at most {MAX_NUMBER_DIGITS:,}",
            line=tok.line or 1,
            column=tok.column or 1,
        )
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


class _Build(Transformer[Token, Any]):
    """Reductions to syntax nodes (runs inline in the LALR parser); each node gets its span."""

    # -- statements -------------------------------------------------------------------------
    def start(self, items: list[Any]) -> list[Any]:
        return items

    def statement(self, items: list[Any]) -> dict[str, Any]:
        kw: Token = items[0]
        st: dict[str, Any] = {"filter": items[1], "start": kw.start_pos, "pos": _pos(kw)}
        for it in items[2:]:
            st[it[0]] = it[1]
        return st

    def match_all(self, items: list[Any]) -> Node:
        tok: Token = items[0]
        return MatchAll(pos=_pos(tok), span=_span(tok, tok))

    def body(self, items: list[Any]) -> Node:
        node: Node = items[0]
        return node

    def from_clause(self, items: list[Any]) -> tuple[str, Any]:
        return ("from_", items[1].text)

    def limit_clause(self, items: list[Any]) -> tuple[str, Any]:
        tok: Token = items[1]
        value = _number(tok)
        if not isinstance(value, int) or value < 0:
            raise FilterQLError(
                f"LIMIT needs a whole number, not {tok}",
                line=tok.line or 1,
                column=tok.column or 1,
                expected=["a number"],
            )
        return ("limit", value)

    def with_clause(self, items: list[Any]) -> tuple[str, Any]:
        return ("with_", tuple(items[1:]))

    def with_pair(self, items: list[Any]) -> tuple[str, Any]:
        lit: Literal = items[1]
        return (items[0].text, lit.value)

    def alias_clause(self, items: list[Any]) -> tuple[str, Any]:
        return ("alias", items[1].text)

    def name(self, items: list[Any]) -> _Name:
        tok: Token = items[0]
        raw = str(tok)
        if tok.type == "STRING":
            text = unquote_string(raw)
        elif tok.type in ("IDENT", "QIDENT"):
            text = ".".join(s for s, _q in split_ident(raw))
        else:
            text = raw
        return _Name(text, _end(tok))

    # -- phrases ----------------------------------------------------------------------------
    def infix_or(self, items: list[Any]) -> Node:
        return _flatten("OR", items[0], items[2], items[1].type == "OROR")

    def infix_and(self, items: list[Any]) -> Node:
        return _flatten("AND", items[0], items[2], items[1].type == "ANDAND")

    def not_(self, items: list[Any]) -> Node:
        return Not(items[1], pos=_pos(items[0]), span=_span(items[0], items[1]))

    def compare(self, items: list[Any]) -> Node:
        left, right = items[0], items[2]
        return Compare(str(items[1]), left, right, pos=_pos(left), span=_span(left, right))

    def compare_eq(self, items: list[Any]) -> Node:
        left, right = items
        return Compare("==", left, right, pos=_pos(left), span=_span(left, right))

    def member(self, items: list[Any]) -> Node:
        left, tok, right = items
        op = "INTERSECTS" if "INTERSECTS" in tok.type else "IN"
        return self._binary(op, left, tok, right)

    def contains(self, items: list[Any]) -> Node:
        return self._binary("CONTAINS", *items)

    def like(self, items: list[Any]) -> Node:
        return self._binary("LIKE", *items)

    @staticmethod
    def _binary(op: str, left: Node, tok: Token, right: Node) -> Node:
        negated = tok.type.startswith("NOT_")
        return Binary(op, left, right, negated, pos=_pos(left), span=_span(left, right))

    def between(self, items: list[Any]) -> Node:
        arg, tok, lo, _and, hi = items
        negated = tok.type.startswith("NOT_")
        return Between(arg, lo, hi, negated, pos=_pos(arg), span=_span(arg, hi))

    def arith(self, items: list[Any]) -> Node:
        left, op, right = items
        return Arith(str(op), left, right, pos=_pos(left), span=_span(left, right))

    def exists_(self, items: list[Any]) -> Node:
        return Exists(items[1], pos=_pos(items[0]), span=_span(items[0], items[1]))

    def parens(self, items: list[Any]) -> Node:
        """``( phrase )``: the phrase itself, its outer span widened over the brackets."""
        lp, rp = items[0], items[2]
        node: Node = items[1]
        span = node.span
        return replace(node, span=Span(span.start, span.end, _start(lp), _end(rp)))

    def group(self, items: list[Any]) -> Node:
        tok: Token = items[0]
        op = "AND" if tok.type == "AND_LP" else "OR"
        return Logic(op, _nodes(items), pos=_pos(tok), span=_span(tok, items[-1]))

    def paren_list(self, items: list[Any]) -> Node:
        values = _nodes(items)
        return ListLit(values, pos=_pos(*values), span=_span(items[0], items[-1]))

    def include(self, items: list[Any]) -> Node:
        name: _Name = items[1]
        return Include(name.text, pos=_pos(items[0]), span=_span(items[0], name))

    def call(self, items: list[Any]) -> Node:
        tok: Token = items[0]
        span = _span(tok, items[-1])
        return Call(str(tok).lower(), _nodes(items[1:]), pos=_pos(tok), span=span)

    def array(self, items: list[Any]) -> Node:
        values = _nodes(items)
        span = _span(items[0], items[-1])
        return ListLit(values, bracket=True, pos=_pos(*values), span=span)

    def ident(self, items: list[Any]) -> Node:
        tok: Token = items[0]
        raw = str(tok)
        return Ident(split_ident(raw), raw, pos=_pos(tok), span=_span(tok, tok))

    def literal(self, items: list[Any]) -> Node:
        tok: Token = items[0]
        t = tok.type
        value: Any
        if t == "STRING":
            value = unquote_string(str(tok))
        elif t == "NUMBER":
            value = _number(tok)
        elif t == "TRUE":
            value = True
        elif t == "FALSE":
            value = False
        else:
            value = None
        return Literal(value, pos=_pos(tok), span=_span(tok, tok))


def _flatten(op: str, left: Node, right: Node, symbol: bool) -> Node:
    """``a AND b AND c`` as one AND of three, read from the left as qlbridge folds it (a
    parenthesised chain on the right stays a part of its own)."""
    span = _span(left, right)
    if isinstance(left, Logic) and left.op == op and left.infix:
        args, symbols = (*left.args, right), (*left.symbols, symbol)
        return Logic(op, args, infix=True, symbols=symbols, pos=left.pos, span=span)
    return Logic(op, (left, right), infix=True, symbols=(symbol,), pos=left.pos, span=span)


_PHRASE_ENDS = frozenset(
    ("IDENT", "QIDENT", "SLUG", "STRING", "NUMBER", "TRUE", "FALSE", "NULL", "RPAR", "RBRACK")
)


class _Infix:
    """Tells infix ``x OR (y)`` / ``x AND (y)`` from a nested group, as qlbridge's parser does.

    After a phrase on the same line, ``OR (`` is infix (``tree.Or`` never looks further), and so is
    ``AND (`` unless qlbridge's single "boolean" flag is set: it is set when a group opens and
    cleared when any group closes, so inside a group ``AND (`` opens a nested group only until the
    first nested group has closed. Such tokens become OR_INFIX_LP / AND_INFIX_LP.
    """

    always_accept = ("OR_LP", "AND_LP")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        prev: Token | None = None
        boolean = False
        opens_group = False
        parens: list[bool] = []  # per open "(": does it open a group?
        for tok in stream:
            kind = tok.type
            if kind in ("OR_LP", "AND_LP"):
                after_phrase = (
                    prev is not None and prev.type in _PHRASE_ENDS and prev.end_line == tok.line
                )
                if after_phrase and (kind == "OR_LP" or not boolean):
                    tok = Token.new_borrow_pos(kind[:-3] + "_INFIX_LP", str(tok), tok)
                else:
                    opens_group = True
            elif kind == "LPAR":
                parens.append(opens_group)
                boolean = boolean or opens_group
                opens_group = False
            elif kind == "RPAR" and parens and parens.pop():
                boolean = False
            prev = tok
            yield tok


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        transformer=_Build(),
        maybe_placeholders=False,
        postlex=_Infix(),
    )


@lru_cache(maxsize=1)
def _scanner() -> Lark:
    """The grammar's terminals alone: reads any slice of FilterQL text token by token."""
    return Lark(GRAMMAR.read_text(encoding="utf-8"), parser=None, lexer="basic")


def tokens(text: str) -> Iterator[Token]:
    """The tokens of FilterQL text in order, white space and comments left out (their places are
    the gaps between tokens). Raises lark's UnexpectedCharacters where no terminal fits."""
    return _scanner().lex(text)


def _from_lark(exc: UnexpectedInput, text: str) -> FilterQLError:
    line = getattr(exc, "line", 1) or 1
    column = getattr(exc, "column", 1) or 1
    if line < 1:
        line, column = _end_position(text)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = _describe(set(exc.accepts or exc.expected))
        if tok.type == "$END":
            line, column = _end_position(text)
            found = "end of text"
        else:
            found = f"{str(tok)!r}"
        msg = f"unexpected {found}; expected {_join(expected)}"
        return FilterQLError(msg, line=line, column=column, expected=expected, text=text)
    if isinstance(exc, UnexpectedCharacters):
        expected = _describe(set(exc.allowed or ()))
        at = exc.pos_in_stream if exc.pos_in_stream is not None else -1
        ch = text[at] if 0 <= at < len(text) else ""
        what = _char_hint(text, at) or f"unexpected character {ch!r}"
        msg = f"{what}; expected {_join(expected)}" if expected else what
        return FilterQLError(msg, line=line, column=column, expected=expected, text=text)
    if isinstance(exc, UnexpectedEOF):
        line, column = _end_position(text)
        expected = _describe(set(exc.expected))
        msg = f"the text ended too early; expected {_join(expected)}"
        return FilterQLError(msg, line=line, column=column, expected=expected, text=text)
    return FilterQLError(str(exc), line=line, column=column, text=text)


def _char_hint(text: str, pos: int) -> str:
    """A friendlier reason for a few characters people often get wrong."""
    if not 0 <= pos < len(text):
        return ""
    ch = text[pos]
    if ch == '"':
        return "this string is never closed (a double quote is missing)"
    if ch == "`":
        return "this back-quoted name is never closed"
    if ch == "'":
        return "this single-quoted name is never closed (strings take double quotes)"
    return ""


def _join(items: list[str]) -> str:
    if not items:
        return "nothing more"
    if len(items) == 1:
        return items[0]
    if len(items) > 12:
        return ", ".join(items[:12]) + ", …"
    return "one of " + ", ".join(items)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _description(text: str, start: int) -> str:
    """The ``--`` comment lines just before a statement (qlbridge keeps them as its description)."""
    before = text[:start]
    cut = before.rfind(";")
    lines = before[cut + 1 :].splitlines()
    out = [ln.strip()[2:].strip() for ln in lines if ln.strip().startswith("--")]
    return "\n".join(out)


def parse_statements(text: str) -> list[Statement]:
    """All the ``;``-separated FILTER statements in ``text``. Raises FilterQLError."""
    if not isinstance(text, str):
        raise FilterQLError("a filter must be text")
    if not text.strip():
        raise FilterQLError("the filter is empty; expected FILTER", expected=["FILTER"], text=text)
    try:
        raw = _parser().parse(text)
    except FilterQLError as exc:
        exc.text = text
        raise
    except UnexpectedInput as exc:
        raise _from_lark(exc, text) from None
    except VisitError as exc:
        orig = exc.orig_exc
        if isinstance(orig, FilterQLError):
            orig.text = text
            raise orig from None
        raise FilterQLError(f"could not read the filter: {orig}", text=text) from None
    except RecursionError:
        raise FilterQLError("the filter is nested too deeply", text=text) from None
    except LarkError as exc:
        raise FilterQLError(f"could not read the filter: {exc}", text=text) from None
    parts: list[Any] = list(cast(list[Any], raw))
    semis = [t.start_pos for t in parts if isinstance(t, Token)]
    out: list[Statement] = []
    for st in (x for x in parts if isinstance(x, dict)):
        start = st["start"]
        end = min((p for p in semis if p is not None and p > start), default=len(text))
        chunk = text[start:end]
        out.append(
            Statement(
                filter=st["filter"],
                text=chunk.strip(),
                alias=st.get("alias"),
                from_=st.get("from_"),
                limit=st.get("limit"),
                with_=st.get("with_", ()),
                description=_description(text, start),
                pos=st["pos"],
                offset=start,
            )
        )
    return out
