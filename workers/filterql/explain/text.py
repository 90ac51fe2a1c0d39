"""The text form of an explanation, and values as people and JSON read them.

``render`` works from the JSON alone, so the CLI, the API and the dashboard print one and the same
thing whether they hold the explanation or its JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

from workers.filterql.source import one_line
from workers.filterql.values import Time
from workers.timefmt import format_rfc3339

TEXT_WIDTH = 64
"""Longest clause text in the text form before it is cut with an ellipsis (JSON keeps it whole)."""
NOTE_VALUE_WIDTH = 48
NOTE_TIMES = 5


def rfc(ns: int) -> str:
    """RFC 3339, or the bare number for an instant no calendar can print (years past 9999)."""
    try:
        return format_rfc3339(ns)
    except (ValueError, OverflowError, OSError):
        return str(ns)


def tri_text(v: bool | None) -> str:
    return "unknown" if v is None else "true" if v else "false"


def jsonable(v: Any) -> Any:
    """A value as JSON can hold it: times as RFC 3339, odd floats and objects as text."""
    if v is None or v is True or v is False or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Time):
        return rfc(v.ns)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return str(v)


def show_value(v: Any) -> str:
    """A value as the text form prints it: ``42``, ``"pro"``, a time, or ``missing``."""
    if v is None:
        return "missing"
    if isinstance(v, Time):
        return rfc(v.ns)
    try:
        return json.dumps(jsonable(v), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(v)


def render(explained: dict[str, Any]) -> str:
    """The text form of an explanation's JSON (``tree`` and ``next_change``), so the CLI, the API
    and the dashboard print one and the same thing whether they hold the object or its JSON::

        AND (score >= 20, timewindow(purchase, 2, 7))  false    <- decided by timewindow(…)
        ├─ score >= 20                                 true     score = 42
        └─ timewindow(purchase, 2, 7)                  false    1 in window: … (needs 2)
        next change: never (with no new data)
    """
    rows: list[tuple[str, str, str]] = []

    def walk(c: dict[str, Any], lead: str, branch: str) -> None:
        text = cut(one_line(c["text"], TEXT_WIDTH), TEXT_WIDTH)
        rows.append((lead + branch + text, c["value"], clause_note(c)))
        cont = lead + ("│  " if branch == "├─ " else "   " if branch else "")
        kids = c["children"]
        for i, child in enumerate(kids):
            walk(child, cont, "└─ " if i == len(kids) - 1 else "├─ ")

    walk(explained["tree"], "", "")
    width = max(len(left) for left, _v, _n in rows)
    lines = [f"{left:<{width}}  {value:<7}  {note}".rstrip() for left, value, note in rows]
    lines.append(f"next change: {change_sentence(explained.get('next_change'))}")
    return "\n".join(lines)


def change_sentence(change: dict[str, Any] | None) -> str:
    return "never (with no new data)" if change is None else str(change["sentence"])


def clause_note(c: dict[str, Any]) -> str:
    """What the text form prints after a clause's value: what it read, or what decided it."""
    w = c.get("window")
    if w is not None:
        times = w["times"][-NOTE_TIMES:]
        shown = ("…, " if w["count"] > NOTE_TIMES else "") + ", ".join(times)
        where = f": {shown}" if times else ""
        return f"{w['count']} in window{where} (needs {w['need']})"
    kids = c["children"]
    if c["kind"] in ("and", "or") and kids:
        decided = c["decided_by"]
        if len(decided) == len(kids) > 1:
            return "<- all hold" if c["value"] == "true" else "<- none holds"
        names = ", ".join(cut(one_line(kids[i]["text"], 40), 40) for i in decided)
        return f"<- decided by {names}" if names else ""
    if c["kind"] == "include":
        return f"audience {c['include']}"
    return ", ".join(f"{r['text']} = {cut(r['shown'], NOTE_VALUE_WIDTH)}" for r in c["reads"])


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
