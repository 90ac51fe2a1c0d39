"""LIKE patterns: qlbridge's glob (mb0/glob ``Match``), decided in time linear in the value.

qlbridge answers ``x LIKE "pat"`` with mb0/glob after replacing ``%`` by ``*``. That matcher reads
the pattern as pieces (a run of stars, then a chunk of one-character parts: literals, ``?``,
``[classes]``, ``\\`` escapes) and decides left to right: a chunk that fits where it stands is
taken there; after ``*`` (no ``/`` crossed) the first place it fits is taken for good; after ``**``
every place is tried by recursion, which is polynomial in the value (and the regular expression we
used before backtracked exponentially: 4,000 dots against ``*.*.*.com`` took 75 s).

Here the same decisions are made, but each (piece, position) is decided once and remembered, and a
chunk (fixed width, no quantifier) is found by one C-level search, so an evaluation costs at most
about pieces x (value length + 1) steps, whatever the input. :meth:`Glob.run` counts them.

One documented difference: Go's ``*`` skips bytes, so a ``?`` or a class right after it can match
half of a multi-byte character (there ``*??`` matches ``"€"``); here a character is never split.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass

MAX_PATTERN_CHARS = 1000
"""Longest LIKE pattern evaluated; a longer one is a compile error (a literal) or unknown."""
MAX_WILDCARDS = 16
"""Most runs of ``*`` in one pattern: the work per value grows with this count."""

TRUE, FALSE, ERR = 1, 0, 2
"""A decision: matched, not matched, or mb0's ErrBadPattern (qlbridge's "not ok": unknown)."""

_SLASH = "/"


class PatternTooLarge(ValueError):
    """The pattern is over one of the limits above; the message says which."""


@dataclass(frozen=True, slots=True)
class _Piece:
    """A run of stars (0 only for the first piece, 1, or 2 for two or more) and the chunk after it.

    ``rx`` finds where the chunk fits (``literal`` when it is plain text). A chunk with a syntax
    error never fits: ``rx`` then finds where matching reaches the error with text left, which
    mb0 reports as ErrBadPattern.
    """

    star: int
    width: int
    literal: str | None
    rx: re.Pattern[str] | None
    every: re.Pattern[str] | None
    bad: bool

    @property
    def empty(self) -> bool:
        return self.rx is None and self.literal is None


def _scan_chunk(pattern: str, i: int) -> tuple[int, int]:
    """mb0's scanChunk: (stars, end of the chunk that starts after them)."""
    n = len(pattern)
    start = i
    while i < n and pattern[i] == "*":
        i += 1
    stars = i - start
    in_range = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < n:
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return stars, i


def _get_esc(chunk: str, i: int) -> tuple[str, int] | None:
    """mb0's getEsc: one possibly escaped character of a class; None for ErrBadPattern."""
    n = len(chunk)
    if i >= n or chunk[i] in "-]":
        return None
    if chunk[i] == "\\":
        i += 1
        if i >= n:
            return None
    ch = chunk[i]
    i += 1
    if i >= n:
        return None
    return ch, i


def _class_regex(negated: bool, ranges: list[tuple[str, str]]) -> str:
    parts = []
    for lo, hi in ranges:
        if lo > hi:  # an empty range matches nothing (Go: lo <= r && r <= hi)
            continue
        parts.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    body = "".join(parts)
    if negated:
        return f"[^{body}]" if body else "(?s:.)"
    return f"[{body}]" if body else "(?!)"


def _compile_chunk(chunk: str) -> tuple[list[str], int, str | None, bool]:
    """(regex parts, width, plain text or None, bad) of one chunk, as matchChunk reads it."""
    parts: list[str] = []
    text: list[str] = []
    plain = True
    i, n = 0, len(chunk)
    while i < n:
        ch = chunk[i]
        if ch == "[":
            i += 1
            if i >= n:
                return parts, len(parts), None, True
            negated = chunk[i] == "^"
            if negated:
                i += 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < n and chunk[i] == "]" and ranges:
                    i += 1
                    break
                got = _get_esc(chunk, i)
                if got is None:
                    return parts, len(parts), None, True
                lo, i = got
                hi = lo
                if chunk[i] == "-":
                    got = _get_esc(chunk, i + 1)
                    if got is None:
                        return parts, len(parts), None, True
                    hi, i = got
                ranges.append((lo, hi))
            parts.append(_class_regex(negated, ranges))
            plain = False
        elif ch == "?":
            parts.append("[^/]")
            plain = False
            i += 1
        elif ch == "\\":
            if i + 1 >= n:
                return parts, len(parts), None, True
            parts.append(re.escape(chunk[i + 1]))
            text.append(chunk[i + 1])
            i += 2
        else:
            parts.append(re.escape(ch))
            text.append(ch)
            i += 1
    return parts, len(parts), "".join(text) if plain else None, False


def _piece(stars: int, chunk: str) -> _Piece:
    star = min(stars, 2)
    if not chunk:
        return _Piece(star, 0, None, None, None, False)
    parts, width, literal, bad = _compile_chunk(chunk)
    body = "".join(parts)
    if bad:
        body += "(?=.)"  # the error fires only when text is left where matching reaches it
    flags = re.DOTALL
    return _Piece(
        star,
        width,
        literal,
        re.compile(body, flags),
        re.compile(f"(?=(?:{body}))", flags),
        bad,
    )


class Glob:
    """A compiled LIKE pattern (after ``%`` -> ``*``); :meth:`match` decides a value."""

    __slots__ = ("globstar", "listed", "pattern", "pieces")

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise PatternTooLarge(
                f"the LIKE pattern is {len(pattern):,} characters; the limit is {MAX_PATTERN_CHARS:,}"
            )
        self.pattern = pattern
        pieces: list[_Piece] = []
        i = 0
        while i < len(pattern):
            start = i
            stars, i = _scan_chunk(pattern, i)
            pieces.append(_piece(stars, pattern[start + stars : i]))
        runs = sum(1 for p in pieces if p.star)
        if runs > MAX_WILDCARDS:
            raise PatternTooLarge(
                f"the LIKE pattern has {runs} runs of '*'; the limit is {MAX_WILDCARDS}"
            )
        self.pieces = tuple(pieces)
        self.globstar = any(p.star == 2 for p in pieces)
        # A piece after a '**' that is not last can be entered from many places: its positions
        # are listed once per value (and bisected) rather than searched for again each time.
        listed: list[bool] = []
        seen_globstar = False
        for k, piece in enumerate(pieces):
            listed.append(seen_globstar)
            seen_globstar = seen_globstar or (piece.star == 2 and k < len(pieces) - 1)
        self.listed = tuple(listed)

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def match(self, value: str) -> bool | None:
        """True or False; None when mb0 reports a malformed pattern for this value."""
        if not self.pieces:
            return value == ""
        first = self.pieces[0]
        if len(self.pieces) == 1 and first.star == 0 and first.literal is not None:
            return value == first.literal  # no wildcard: plain equality
        return self.run(value)[0]

    def run(self, value: str) -> tuple[bool | None, int]:
        """:meth:`match` and the steps it took (for tests and benchmarks that bound the work)."""
        if self.globstar:
            r = _Run(self, value)
            decision = r.decide()
            steps = r.steps
        else:
            decision, steps = self._chain(value)
        return (None if decision == ERR else decision == TRUE), steps

    def _chain(self, s: str) -> tuple[int, int]:
        """Without '**' mb0 never goes back: one pass, each chunk searched for once."""
        n = len(s)
        p = 0
        steps = 0
        last_k = len(self.pieces) - 1
        for k, piece in enumerate(self.pieces):
            last = k == last_k
            steps += 1
            if piece.empty:  # a trailing '*': the rest, without a '/'
                steps += n - p
                return (TRUE if s.find(_SLASH, p) < 0 else FALSE), steps
            if piece.star == 0:
                lo = hi = p
            else:
                q = s.find(_SLASH, p)
                lo, hi = p, n if q < 0 else q
                steps += hi - lo
                if last and not piece.bad:  # must end the value: only one place can do
                    at = n - piece.width
                    steps += piece.width
                    ok = lo <= at <= hi and _fits(piece, s, at)
                    return (TRUE if ok else FALSE), steps
            steps += (hi - lo + 1) * (piece.width + 1)
            if piece.star == 0 and not piece.bad:
                at = p if _fits(piece, s, p) else -1
            else:
                at = _find(piece, s, lo, hi)
            if at < 0:
                return FALSE, steps
            if piece.bad:
                return ERR, steps
            p = at + piece.width
            if last and p != n:
                return FALSE, steps
        return (TRUE if p == n else FALSE), steps


def _fits(piece: _Piece, s: str, at: int) -> bool:
    if piece.literal is not None:
        return s.startswith(piece.literal, at)
    assert piece.rx is not None
    return piece.rx.match(s, at) is not None


def _find(piece: _Piece, s: str, lo: int, hi: int) -> int:
    """The first position in [lo, hi] where the chunk fits (or reaches its error), or -1."""
    end = min(len(s), hi + piece.width + (1 if piece.bad else 0))
    if piece.literal is not None:
        return s.find(piece.literal, lo, end)
    assert piece.rx is not None
    m = piece.rx.search(s, lo, end)
    return -1 if m is None else m.start()


class _Run:
    """One value against one pattern: the remembered decisions and the work done."""

    __slots__ = ("_last_slash", "_positions", "_slashes", "glob", "memo", "s", "steps")

    def __init__(self, glob: Glob, s: str) -> None:
        self.glob = glob
        self.s = s
        self.steps = 0
        self.memo: dict[tuple[int, int], int] = {}
        self._slashes: list[int] | None = None
        self._last_slash: int | None = None
        self._positions: dict[int, list[int]] = {}

    def decide(self) -> int:
        return self.enter(0, 0)

    # -- finding chunks ---------------------------------------------------------------------------
    def last_slash(self) -> int:
        if self._last_slash is None:
            self.steps += len(self.s) + 1
            self._last_slash = self.s.rfind(_SLASH)
        return self._last_slash

    def next_slash(self, k: int, p: int) -> int:
        """The first '/' at or after p (len(s) if none): a single '*' cannot go past it."""
        s = self.s
        if not self.glob.listed[k]:
            self.steps += 1
            q = s.find(_SLASH, p)
            return len(s) if q < 0 else q
        if self._slashes is None:
            self.steps += len(s) + 1
            self._slashes = [i for i, ch in enumerate(s) if ch == _SLASH]
        slashes = self._slashes
        i = bisect_left(slashes, p)
        return slashes[i] if i < len(slashes) else len(s)

    def first(self, k: int, lo: int, hi: int) -> int:
        """The first position in [lo, hi] where piece k's chunk fits (or reaches its error), or -1.

        A piece entered once is searched directly (a chain of searches moving forward is linear);
        a listed piece has its positions listed once and bisected.
        """
        s = self.s
        n = len(s)
        if lo > hi or lo > n:
            return -1
        piece = self.glob.pieces[k]
        if not self.glob.listed[k]:
            self.steps += (min(n, hi) - lo + 1) * (piece.width + 1)
            return _find(piece, s, lo, hi)
        positions = self._positions.get(k)
        if positions is None:
            self.steps += (n + 1) * (piece.width + 1)
            assert piece.every is not None
            positions = [m.start() for m in piece.every.finditer(s)]
            self._positions[k] = positions
        i = bisect_left(positions, lo)
        self.steps += 1
        if i < len(positions) and positions[i] <= hi:
            return positions[i]
        return -1

    def fits_at(self, k: int, at: int) -> bool:
        piece = self.glob.pieces[k]
        self.steps += piece.width + 1
        return at >= 0 and _fits(piece, self.s, at)

    # -- mb0's Match, one (piece, position) at a time ----------------------------------------------
    def enter(self, k: int, p: int) -> int:
        """Does the pattern from piece k match s[p:]? (mb0's Match on the rest.)"""
        pieces = self.glob.pieces
        n = len(self.s)
        if k == len(pieces):
            return TRUE if p == n else FALSE
        key = (k, p)
        known = self.memo.get(key)
        if known is not None:
            return known
        self.steps += 1
        piece = pieces[k]
        last = k == len(pieces) - 1
        if piece.empty:  # trailing stars: '**' takes the rest, '*' the rest without a '/'
            result = TRUE if piece.star == 2 or p > self.last_slash() else FALSE
        elif piece.star == 1:
            result = self.after_star(k, p, last)
        else:
            here = self.here(k, p, last)
            if here is not None:
                result = here
            elif piece.star == 0:
                result = FALSE
            else:
                result = self.after_globstar(k, p + 1, last) if p < n else FALSE
        self.memo[key] = result
        return result

    def here(self, k: int, p: int, last: bool) -> int | None:
        """The chunk where it stands: taken if it fits (and ends the value, when last)."""
        piece = self.glob.pieces[k]
        n = len(self.s)
        if piece.bad:
            return ERR if self.first(k, p, p) == p else None
        if self.fits_at(k, p):
            t = p + piece.width
            if t == n or not last:
                return self.enter(k + 1, t)
        return None

    def after_star(self, k: int, p: int, last: bool) -> int:
        """'*': the first place from p on (not past a '/') where the chunk fits is taken for good."""
        piece = self.glob.pieces[k]
        n = len(self.s)
        q = self.next_slash(k, p)
        if last and not piece.bad:  # must end the value: only one place can do
            at = n - piece.width
            return TRUE if p <= at <= q and self.fits_at(k, at) else FALSE
        at = self.first(k, p, q)
        if at < 0:
            return FALSE
        if piece.bad:
            return ERR
        return self.enter(k + 1, at + piece.width)

    def after_globstar(self, k: int, j: int, last: bool) -> int:
        """'**': every later place is tried, by recursion, until one matches.

        As mb0 does it: a failed try resumes the search two characters after that try's end.
        """
        piece = self.glob.pieces[k]
        n = len(self.s)
        if last:
            if piece.bad:
                return ERR if self.first(k, j, n) >= 0 else FALSE
            at = n - piece.width
            return TRUE if at >= j and self.fits_at(k, at) else FALSE
        path: list[tuple[int, int]] = []
        result = FALSE
        while j <= n:
            at = self.first(k, j, n)
            if at < 0:
                break
            key = (-1 - k, at)  # chains from different entries meet at the same place
            known = self.memo.get(key)
            if known is not None:
                result = known
                break
            path.append(key)
            if piece.bad:
                result = ERR
                break
            t = at + piece.width
            if self.enter(k + 1, t) == TRUE:
                result = TRUE
                break
            if t + 1 >= n:
                break
            j = t + 2
        for key in path:
            self.memo[key] = result
        return result


_CACHE: dict[str, Glob | PatternTooLarge] = {}


def compile_like(pattern: str) -> Glob:
    """The compiled LIKE pattern (``%`` read as ``*``, as qlbridge does), cached.

    Raises PatternTooLarge for a pattern over the limits.
    """
    got = _CACHE.get(pattern)
    if got is None:
        try:
            got = Glob(pattern.replace("%", "*"))
        except PatternTooLarge as exc:
            got = exc
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        _CACHE[pattern] = got
    if isinstance(got, PatternTooLarge):
        raise got
    return got
