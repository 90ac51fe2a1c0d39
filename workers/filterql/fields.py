"""Field paths: how ``plan``, ``scores.momentum``, `` `utm.source` `` and ``_created`` read a profile.

A dotted name may be one key holding dots or a walk through nested maps; unquoted neighbours are
tried joined first, as qlbridge does. An RFC 3339 string is a date here (Lytics types date
fields; the oracle hands such strings to qlbridge as ``time.Time``), in lists and maps too.
"""

from __future__ import annotations

from typing import Any

from workers.filterql import dates
from workers.filterql.dates import rfc3339_ns
from workers.filterql.node import Evaluator
from workers.filterql.syntax import Ident, Node
from workers.filterql.values import Time, to_time
from workers.pipeline.profile import Profile

SPECIAL = {"_created": "created", "_modified": "modified"}
"""Names that read the profile's own timestamps (ns) rather than a field."""

_UNSEEN: Any = object()


def simple_field(node: Node) -> str | None:
    """The field a node names when it is one plain key (no dots, no quotes, not special)."""
    if isinstance(node, Ident) and len(node.segments) == 1 and not node.segments[0][1]:
        name = node.segments[0][0]
        if name not in SPECIAL:
            return name
    return None


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


def field_reader(node: Ident) -> Evaluator:
    """The evaluator of an identifier: a timestamp, one key (dates cached), or a path."""
    segs = node.segments
    if len(segs) == 1 and not segs[0][1] and segs[0][0] in SPECIAL:
        attr = SPECIAL[segs[0][0]]

        def special(p: Profile, now: int) -> Any:
            ns = getattr(p, attr)
            return Time(ns) if ns else None

        return special
    if len(segs) == 1:
        name = segs[0][0]
        rfc = dates._RFC_CACHE

        def key(p: Profile, now: int) -> Any:
            v: Any = p.fields.get(name)
            c = v.__class__
            if c is str:
                ns = rfc.get(v, _UNSEEN)
                if ns is None:
                    return v
                return field_value(v) if ns is _UNSEEN else Time(ns)
            return field_value(v) if c is list else v

        return key
    texts = tuple(s for s, _q in segs)
    quoted = tuple(q for _s, q in segs)

    def path(p: Profile, now: int) -> Any:
        return resolve_path(p.fields, texts, quoted, 0)

    return path


def raw_field(name: str) -> Evaluator:
    """A root field as stored, not read as a date (timewindow()'s fallback when no event has
    that name)."""

    def raw(p: Profile, now: int) -> Any:
        return p.fields.get(name)

    return raw


def times_from_field(v: Any) -> list[int]:
    """A field used by timewindow(): a date or a list of dates, sorted."""
    if v is None:
        return []
    items = v if v.__class__ is list else [v]
    return sorted(ns for ns in (to_time(e) for e in items if e is not None) if ns is not None)


def resolve_path(d: Any, texts: tuple[str, ...], quoted: tuple[bool, ...], i: int) -> Any:
    """Walk maps along a path; unquoted neighbours may also form one key with dots in it."""
    if i == len(texts):
        return d
    if d.__class__ is not dict:
        return None
    if quoted[i]:
        v = d.get(texts[i])
        if v is None:
            return None
        if i + 1 < len(texts):
            return resolve_path(v, texts, quoted, i + 1)
        return field_value(v) if i == 0 else _map_item(d, v)
    j = i
    while j < len(texts) and not quoted[j]:
        j += 1
    for k in range(j, i, -1):
        key = ".".join(texts[i:k]) if k - i > 1 else texts[i]
        v = d.get(key)
        if v is not None:
            if k < len(texts):
                r = resolve_path(v, texts, quoted, k)
            else:
                r = field_value(v) if i == 0 else _map_item(d, v)
            if r is not None:
                return r
    return None


def _map_item(d: dict[str, Any], v: Any) -> Any:
    """A value read out of a map, as qlbridge's typed maps give it: an int in a map that also holds
    floats (and only numbers) is a float (map[string]float64); RFC 3339 strings are dates."""
    c = v.__class__
    if c is int:
        floats = False
        for x in d.values():
            cx = x.__class__
            if cx is float:
                floats = True
            elif cx is not int and x is not None:
                return v
        return float(v) if floats else v
    if c is str or c is list:
        return field_value(v)
    return v


def field_value(v: Any) -> Any:
    """A profile value as FilterQL sees it: an RFC 3339 string is a date, in lists too."""
    c = v.__class__
    if c is str:
        ns = rfc3339_ns(v)
        return v if ns is None else Time(ns)
    if c is list:
        for e in v:
            if e.__class__ is str and rfc3339_ns(e) is not None:
                return [field_value(x) for x in v]
    return v
