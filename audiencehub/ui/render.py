"""Jinja2 templates and the filters that format numbers the way ui.js does when it refreshes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def num(value: Any) -> str:
    """1234567 -> '1,234,567' (what ``toLocaleString('en-US')`` prints)."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value or 0):,}"


def age(seconds: Any) -> str:
    """Seconds as a short duration; a dash when there is nothing to be old."""
    s = float(seconds or 0)
    if s <= 0:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def rate(per_s: Any) -> str:
    return f"{float(per_s or 0):.2f}/s"


def peak(points: list[list[int]]) -> str:
    return num(max((n for _, n in points), default=0))


def span(points: list[list[Any]]) -> str:
    """How many sampled points a size chart holds (sizes are sampled once a minute)."""
    have = sum(1 for _, n in points if n is not None)
    return f"{have} point{'' if have == 1 else 's'} sampled"


def error_text(err: dict[str, Any] | None) -> str:
    if not err:
        return "no errors"
    status = f" {err['status']}" if err.get("status") else ""
    return f"last error {err.get('at', '')}: {err.get('kind', 'error')}{status}: {err.get('reason', '')}"


def backfill_text(b: dict[str, Any]) -> str:
    if b.get("active"):
        return "running"
    return "done" if b.get("total") else "no backfill"


def change_text(change: dict[str, Any] | None) -> str:
    return "never (with no new data)" if not change else str(change["sentence"])


def when(rfc3339: str | None) -> str:
    """An RFC 3339 instant to the second, for tables: '2026-03-07T09:12:03.123Z' ->
    '2026-03-07 09:12:03Z' (the exact value stays in the element's title)."""
    if not rfc3339 or "T" not in rfc3339:
        return rfc3339 or ""
    day, rest = rfc3339.split("T", 1)
    return f"{day} {rest[:8]}Z"


def clock(rfc3339: str | None) -> str:
    """The time of day of an RFC 3339 UTC instant: '2026-03-07T09:12:03.5Z' -> '09:12:03Z'."""
    if not rfc3339 or "T" not in rfc3339:
        return ""
    return rfc3339.split("T", 1)[1][:8] + "Z"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=num,
        age=age,
        rate=rate,
        peak=peak,
        span=span,
        error_text=error_text,
        backfill_text=backfill_text,
        change_text=change_text,
        clock=clock,
        when=when,
    )
    return env
