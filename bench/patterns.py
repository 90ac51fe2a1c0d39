"""Pattern functions on hostile values: LIKE, todate layouts, email, INCLUDE fan-out.

Each adversarial case (64 KiB values built to make a backtracking matcher explode) is timed next
to a baseline measured in the same run: the same pattern on a 64-byte value. Also times the
everyday patterns (``*@example.com``, ``**blog**``) per call. Exits non-zero if any adversarial
evaluation takes longer than a generous bound (the tests bound the same cases in counted steps).

    .venv/bin/python bench/patterns.py [--bound-s 2.0]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.filterql import compile_filter, compile_set  # noqa: E402
from workers.filterql.functions import _email  # noqa: E402
from workers.filterql.layouts import parse_layout  # noqa: E402
from workers.pipeline.profile import Profile  # noqa: E402
from workers.timefmt import parse_rfc3339  # noqa: E402

KIB64 = 64 * 1024
NOW = parse_rfc3339("2026-03-10T12:00:00Z")


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def like_case(pattern: str, unit: str) -> tuple[str, Callable[[int], Callable[[], object]]]:
    f = compile_filter(f'FILTER host LIKE "{pattern}"')

    def make(size: int) -> Callable[[], object]:
        p = Profile("u", fields={"host": (unit * size)[:size]})
        return lambda: f.matches(p, NOW)

    return f"LIKE {pattern!r} on {unit!r}*", make


def todate_case() -> tuple[str, Callable[[int], Callable[[], object]]]:
    def make(size: int) -> Callable[[], object]:
        n = max(1, size // 6)
        layout, value = "Monday" * n, "Monday" * (n - 1) + "Mondax"
        return lambda: parse_layout(layout, value)

    return "todate('Monday'*n, 'Monday'*(n-1)+'Mondax')", make


def email_case() -> tuple[str, Callable[[int], Callable[[], object]]]:
    def make(size: int) -> Callable[[], object]:
        value = " " * size + "x"
        return lambda: _email(value)

    return "email(' '*n + 'x')", make


def include_case(levels: int) -> tuple[str, Callable[[int], Callable[[], object]]]:
    texts = {f"a{i}": f"FILTER AND (INCLUDE a{i + 1}, INCLUDE a{i + 1})" for i in range(levels)}
    texts[f"a{levels}"] = 'FILTER last_seen > "now-1d"'
    top = compile_set(texts)["a0"]

    def make(_size: int) -> Callable[[], object]:
        p = Profile("u", fields={"last_seen": NOW - 3600 * 10**9})
        return lambda: (top.matches(p, NOW), top.next_change(p, NOW))

    return f"INCLUDE fan-out, {levels} levels (2^{levels} paths): matches + next_change", make


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bound-s", type=float, default=2.0, help="fail above this per evaluation")
    args = ap.parse_args()
    cases = [
        like_case("*.*.*.com", "."),
        like_case("**a*b", "a"),
        like_case("**/*/**/*/x", "/"),
        like_case("**[a-z]*[a-z]**[^b]*b", "a/"),
        like_case("*a" * 15 + "*b", "a"),
        like_case("**a" * 15 + "**b", "a"),
        todate_case(),
        email_case(),
        include_case(40),
    ]
    print(f"adversarial values of {KIB64:,} characters against a 64-character baseline:")
    worst = 0.0
    for name, make in cases:
        small, big = best_of(make(64)), best_of(make(KIB64))
        worst = max(worst, big)
        print(f"  {name:62} {big * 1e3:9.2f} ms  (64 chars: {small * 1e6:7.1f} µs)")
    print("everyday patterns, per evaluation:")
    calls = 200_000
    for pattern, value in (("*@example.com", "ada@example.com"), ("**blog**", "https://x/blog/a")):
        f = compile_filter(f'FILTER host LIKE "{pattern}"')
        p = Profile("u", fields={"host": value})
        elapsed = best_of(lambda f=f, p=p: [f.matches(p, NOW) for _ in range(calls)], 1)  # type: ignore[misc]
        print(f"  LIKE {pattern!r:18} {elapsed / calls * 1e6:6.2f} µs")
    print(f"worst adversarial evaluation: {worst * 1e3:.1f} ms (bound {args.bound_s:.1f} s)")
    if worst > args.bound_s:
        raise SystemExit(f"an adversarial evaluation took {worst:.2f} s (bound {args.bound_s} s)")


if __name__ == "__main__":
    main()
