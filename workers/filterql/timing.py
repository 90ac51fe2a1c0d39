"""How moving times move: the clocks behind ``now()`` and date math, and where they cross a value.

A clock is ``g(T) = add_months(T, months) + fixed``: date math ``"now-7d"`` is a fixed shift,
``"now-1M"`` a calendar one. Within one calendar month of ``T`` a calendar shift is a plain shift
too (Go's AddDate rolls day overflow forward), so every clock is a fixed shift per month "piece",
and the instant it reaches a value is found exactly by arithmetic, never by sampling.
"""

from __future__ import annotations

from bisect import bisect_right

from workers.filterql.dates import (
    add_months,
    month_delta,
    month_delta_bounds,
    month_start,
    next_boundary,
    next_month_start,
)

CAP = 1000
"""Most candidate instants one next_change search examines before answering "re-check at t"."""


class Clock:
    """``g(T) = add_months(T, months) + fixed`` (ns)."""

    __slots__ = ("fixed", "months")

    def __init__(self, fixed: int = 0, months: int = 0) -> None:
        self.fixed = fixed
        self.months = months

    def __repr__(self) -> str:
        return f"Clock(fixed={self.fixed}, months={self.months})"

    def at(self, now: int) -> int:
        if self.months:
            return add_months(now, self.months) + self.fixed
        return now + self.fixed

    def next_reach(self, t: int, targets: list[int]) -> int | None:
        """Earliest T > t at which ``g(T) >= X`` changes truth for some X in sorted ``targets``."""
        fixed = self.fixed
        if not self.months:
            i = bisect_right(targets, t + fixed)
            return targets[i] - fixed if i < len(targets) else None
        lo, hi = month_delta_bounds(self.months)
        lo, hi = lo + fixed, hi + fixed
        best: int | None = None
        for x in targets:
            # g(T) >= x is false for every T < x - hi and true for every T > x - lo.
            r_lo, r_hi = x - hi, x - lo
            if r_hi <= t or (best is not None and r_lo >= best):
                continue
            a = month_start(max(t + 1, r_lo))
            while a <= r_hi:
                b = next_month_start(a)
                c = x - (month_delta(a, self.months) + fixed)
                if max(a, t + 1) <= c < b:
                    best = c if best is None or c < best else best
                    break
                if t < b <= r_hi:
                    best = b if best is None or b < best else best
                    break
                a = b
        return best

    def next_calendar(self, t: int, unit: str) -> int:
        """Earliest T > t at which the ``unit`` (hour/day/month/year) of ``g(T)`` may change."""
        if not self.months:
            return next_boundary(t + self.fixed, unit) - self.fixed
        t1 = t + 1
        a = month_start(t1)
        if t1 == a:
            return t1
        b = next_month_start(t1)
        d = month_delta(t1, self.months) + self.fixed
        c = next_boundary(t + d, unit) - d
        return c if c < b else b

    def next_piece(self, t: int) -> int | None:
        """Next instant after t where this clock's offset can change (a month start), if ever."""
        return next_month_start(t) if self.months else None
