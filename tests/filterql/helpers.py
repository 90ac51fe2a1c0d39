"""Profiles, instants and checks shared by the FilterQL tests (conftest.py serves them as fixtures)."""

from __future__ import annotations

from collections.abc import Callable

from workers.filterql import Filter, FilterQLError, compile_filter, compile_set, parse_statements
from workers.filterql.walker import Walker
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339, parse_rfc3339

HOUR = 3600 * NS_PER_S
MINUTE = 60 * NS_PER_S
DAY = NS_PER_DAY

NOW = parse_rfc3339("2026-03-10T12:00:00Z")
"""Every table case is evaluated at this instant (a Tuesday)."""

T1 = parse_rfc3339("2015-12-18T00:00:00Z")
"""qlbridge's ``dateparse.MustParse("12/18/2015")``, read as UTC."""


def rfc(ns: int) -> str:
    return format_rfc3339(ns)


def yoda() -> Profile:
    """qlbridge's vm/filterqlvm_test.go ``User`` plus its map reader, translated to JSON fields.

    Go's struct reader is case-insensitive and the tests use both ``BankAmount`` and
    ``bankamount``, ``Roles`` and ``roles``; JSON keys are case-sensitive, so both spellings are
    present. ``FullName`` (a Go method) becomes a plain field; time.Time values become RFC 3339.
    """
    t1 = rfc(T1)
    return Profile(
        "yoda",
        fields={
            "name": "Yoda",
            "Created": t1,
            "Updated": rfc(NOW - HOUR),
            "Authenticated": True,
            "HasSession": True,
            "Address": {"City": "Detroit", "Zip": 55},
            "roles": ["admin", "api"],
            "Roles": ["admin", "api"],
            "BankAmount": 55.5,
            "bankamount": 55.5,
            "hits": {"foo": 5},
            "Hits": {"foo": 5},
            "FirstEvent": {"signedup": t1},
            "FullName": "Yoda, Jedi",
            "city": "Peoria, IL",
            "zip": 5,
            "lastevent": {"signedup": t1},
            "last.event": {"has.period": t1},
            "transactions": [rfc(T1 - DAY), rfc(T1 + DAY)],
            "transactionsnil": [],
        },
        created=T1,
        modified=NOW - HOUR,
    )


QLBRIDGE_INCLUDES = """
    -- Filter All
    FILTER * ALIAS  match_all_include;

    FILTER name == "Yoda" ALIAS is_yoda_true;
    FILTER name == "not gonna happen ALIAS name_false"
"""


def qlbridge_includes() -> dict[str, Filter]:
    texts = {st.alias: st.text for st in parse_statements(QLBRIDGE_INCLUDES) if st.alias}
    return compile_set(texts)


def table_includes() -> dict[str, Filter]:
    """The audiences audiencehub's case table (tables.CASES) INCLUDEs."""
    return compile_set(
        {
            "pros": 'FILTER plan == "pro"',
            "frees": 'FILTER plan == "free"',
            "buyers": "FILTER timewindow(purchase, 1, 7)",
        }
    )


def customer() -> Profile:
    """A realistic audiencehub profile: nested scores, lists, dates as strings, event history."""
    return Profile(
        "c1",
        fields={
            "email": "Ada.Lovelace@Example.co.uk",
            "first_name": "Ada",
            "empty": "",
            "nothing": [],
            "plan": "pro",
            "visits": 42,
            "ltv": "1,234.50",
            "score_str": "75",
            "ratio": 0.25,
            "vip": True,
            "opted_out": False,
            "optin_text": "true",
            "country": "GB",
            "tags": ["beta", "newsletter", "b2b"],
            "nums": [1, 2, 3],
            "scores": {"momentum": 80, "quantity": 15, "nested": {"deep": "yes"}},
            "utm.source": "google",
            "url": "https://www.Example.co.uk/blog/post-1?x=1",
            "site": "shop.example.com",
            "signup": "2026-02-01T08:30:00Z",
            "last_login": "2026-03-09T18:00:00Z",
            "renewal": "2026-04-01T00:00:00Z",
            "birthday": "04/15/1990",
            "epoch_ms": 1767225600000,
            "logins": ["2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z"],
            "odd": "not a date",
            "company": 'Toys R" Us',
        },
        occurrences={
            "purchase": [
                parse_rfc3339("2026-02-20T10:00:00Z"),
                parse_rfc3339("2026-03-04T10:00:00Z"),
                parse_rfc3339("2026-03-08T10:00:00Z"),
            ],
            "login": [parse_rfc3339("2026-03-10T11:00:00Z")],
        },
        created=parse_rfc3339("2025-06-01T00:00:00Z"),
        modified=parse_rfc3339("2026-03-10T11:00:00Z"),
    )


def resolver(known: dict[str, Filter]) -> Callable[[str], Filter]:
    def resolve(slug: str) -> Filter:
        if slug in known:
            return known[slug]
        raise FilterQLError(f"unknown audience {slug!r}")

    return resolve


def walker_for(includes: dict[str, Filter] | None = None) -> Walker:
    return Walker({k: f.statement for k, f in (includes or {}).items()})


def check(text: str, profile: Profile, now: int, includes: dict[str, Filter] | None = None) -> bool:
    """Compile and evaluate; also assert the reference walker agrees."""
    known = includes or {}
    f = compile_filter(text, resolver(known))
    got = f.matches(profile, now)
    assert walker_for(known).matches(f.statement, profile, now) == got, (
        f"walker disagrees on {text}"
    )
    return got
