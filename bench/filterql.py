"""FilterQL evaluation rate: 20 realistic audiences over 10,000 profiles, on one core.

Compiles each audience once, then times ``Filter.matches`` for every (profile, audience) pair, and
in the same run times the reference AST walker (``workers.filterql.walker``: re-interprets the
parsed tree for every profile) on the same pairs, checking both give the same answers. Also times
``next_change`` for the time-dependent audiences. Prints figures; asserts nothing.

    .venv/bin/python bench/filterql.py [--profiles 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workers.filterql import Filter, compile_set  # noqa: E402
from workers.filterql.walker import Walker  # noqa: E402
from workers.pipeline.profile import Profile  # noqa: E402
from workers.timefmt import NS_PER_DAY, format_rfc3339, parse_rfc3339  # noqa: E402

NOW = parse_rfc3339("2026-03-10T12:00:00Z")

AUDIENCES = {
    "pros": 'FILTER plan == "pro"',
    "anglo_active": 'FILTER AND (country IN ("US", "CA", "GB"), visits > 10)',
    "seen_this_week": 'FILTER last_login > "now-7d"',
    "repeat_buyers": "FILTER timewindow(purchase, 2, 30)",
    "paying_with_email": 'FILTER AND (EXISTS email, NOT plan IN ("free"))',
    "momentum": "FILTER scores.momentum >= 50",
    "beta_or_vip_tags": 'FILTER tags INTERSECTS ("beta", "vip")',
    "valuable": "FILTER OR (vip == true, ltv > 1000)",
    "gmail": 'FILTER domain(email) == "gmail.com"',
    "signed_up_last_quarter": 'FILTER signup BETWEEN "now-90d" AND "now-30d"',
    "young_us": 'FILTER AND (age >= 18, age < 35, country == "US")',
    "lapsed": "FILTER NOT timewindow(login, 1, 14)",
    "example_domain": 'FILTER email LIKE "*@example.com"',
    "old_paying": 'FILTER AND (plan != "free", daysago(signup) > 60)',
    "san_cities": 'FILTER city CONTAINS "San"',
    "big_teams": (
        'FILTER OR (AND (plan == "team", visits > 50), AND (plan == "pro", scores.quantity > 20))'
    ),
    "old_profiles": 'FILTER _created < "now-180d"',
    "adas": 'FILTER tolower(first_name) == "ada"',
    "active_pros": 'FILTER AND (INCLUDE pros, last_login > "now-30d")',
    "reachable": 'FILTER AND (EXISTS phone, NOT EXISTS unsubscribed, country NOT IN ("RU"))',
}

FIRST = ["Ada", "Grace", "Alan", "Linus", "Barbara", "ada", "Ken", "Margaret"]
DOMAINS = ["gmail.com", "example.com", "yahoo.com", "corp.example.co.uk"]
COUNTRIES = ["US", "CA", "GB", "FR", "DE", "RU", "BR", "IN"]
CITIES = ["San Francisco", "San Diego", "Paris", "Berlin", "London", "Austin", "Santiago"]
PLANS = ["free", "pro", "team"]
TAGS = ["beta", "vip", "newsletter", "b2b", "churn-risk"]


def make_profile(rng: random.Random, i: int) -> Profile:
    fields: dict[str, object] = {
        "first_name": rng.choice(FIRST),
        "plan": rng.choice(PLANS),
        "country": rng.choice(COUNTRIES),
        "city": rng.choice(CITIES),
        "visits": rng.randint(0, 120),
        "age": rng.randint(13, 80),
        "ltv": round(rng.uniform(0, 3000), 2),
        "vip": rng.random() < 0.1,
        "scores": {"momentum": rng.randint(0, 100), "quantity": rng.randint(0, 40)},
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "signup": format_rfc3339(
            NOW - rng.randint(0, 400) * NS_PER_DAY - rng.randint(0, 86_399) * 10**9
        ),
        "last_login": format_rfc3339(NOW - rng.randint(0, 60 * 86_400) * 10**9),
    }
    if rng.random() < 0.9:
        fields["email"] = f"user{i}@{rng.choice(DOMAINS)}"
    if rng.random() < 0.5:
        fields["phone"] = f"+1555{i:07d}"
    if rng.random() < 0.05:
        fields["unsubscribed"] = True
    occurrences = {
        "purchase": sorted(
            NOW - rng.randint(0, 90 * 86_400) * 10**9 for _ in range(rng.randint(0, 6))
        ),
        "login": sorted(
            NOW - rng.randint(0, 40 * 86_400) * 10**9 for _ in range(rng.randint(0, 10))
        ),
    }
    created = NOW - rng.randint(0, 700) * NS_PER_DAY
    return Profile(f"u{i}", fields=fields, occurrences=occurrences, created=created, modified=NOW)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    profiles = [make_profile(rng, i) for i in range(args.profiles)]
    t0 = time.perf_counter()
    filters: dict[str, Filter] = compile_set(AUDIENCES)
    compile_s = time.perf_counter() - t0
    pairs = len(profiles) * len(filters)
    flist = list(filters.values())
    print(
        f"FilterQL: {len(filters)} audiences x {len(profiles):,} profiles = {pairs:,} evaluations"
    )
    print(f"  compile all {len(filters)} audiences: {compile_s * 1000:.1f} ms")

    # Warm the date-string cache the way a running worker would have it.
    for p in profiles[:100]:
        for f in flist:
            f.matches(p, NOW)

    best = float("inf")
    answers: list[bool] = []
    for _ in range(3):
        out: list[bool] = []
        append = out.append
        t0 = time.perf_counter()
        for p in profiles:
            for f in flist:
                append(f.matches(p, NOW))
        best = min(best, time.perf_counter() - t0)
        answers = out
    compiled_rate = pairs / best
    print(
        f"  compiled closures: {compiled_rate:,.0f} evaluations/s "
        f"({best * 1e6 / pairs:.2f} µs each; best of 3 runs, {best:.2f} s)"
    )

    walker = Walker({k: f.statement for k, f in filters.items()})
    statements = [f.statement for f in flist]
    t0 = time.perf_counter()
    walked: list[bool] = []
    for p in profiles:
        for st in statements:
            walked.append(walker.matches(st, p, NOW))
    walk_s = time.perf_counter() - t0
    walk_rate = pairs / walk_s
    print(f"  AST walker:        {walk_rate:,.0f} evaluations/s ({walk_s:.2f} s)")
    print(f"  ratio compiled / walker: {compiled_rate / walk_rate:.1f}x")
    agree = sum(a == b for a, b in zip(answers, walked, strict=True))
    print(f"  answers agree: {agree:,} of {pairs:,}; matches: {sum(answers):,}")

    timed = [f for f in flist if f.time_dependent]
    t0 = time.perf_counter()
    scheduled = 0
    for p in profiles:
        for f in timed:
            if f.next_change(p, NOW) is not None:
                scheduled += 1
    nc_s = time.perf_counter() - t0
    n_nc = len(profiles) * len(timed)
    print(
        f"  next_change over the {len(timed)} time-dependent audiences: {n_nc / nc_s:,.0f}/s "
        f"({scheduled:,} of {n_nc:,} have a future flip)"
    )


if __name__ == "__main__":
    main()
