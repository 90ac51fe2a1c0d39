"""What a compiled filter tells the engine: fields, events, includes, time dependence; INCLUDE rules."""

from __future__ import annotations

import pytest

from tests.filterql.helpers import DAY, NOW, customer, rfc
from workers.filterql import Filter, FilterQLError, compile_filter, compile_set
from workers.filterql.includes import MAX_INCLUDE_DEPTH
from workers.pipeline.profile import Profile


@pytest.mark.parametrize(
    ("text", "fields", "events", "timed"),
    [
        ('FILTER name == "x"', {"name"}, set(), False),
        ("FILTER scores.momentum > 5", {"scores", "scores.momentum"}, set(), False),
        ("FILTER `last.event`.`has.period` > 5", {"last.event"}, set(), False),
        ("FILTER a.`b.c`.d > 1", {"a"}, set(), False),
        ('FILTER _created < "now-7d"', {"_created"}, set(), True),
        ("FILTER EXISTS _modified", {"_modified"}, set(), False),
        ("FILTER timewindow(purchase, 2, 7)", {"purchase"}, {"purchase"}, True),
        (
            'FILTER AND (tolower(email) == "x", daysago(signup) > 3)',
            {"email", "signup"},
            set(),
            True,
        ),
        ("FILTER dayofweek() == 1", set(), set(), True),
        ("FILTER yy(signup) == 26", {"signup"}, set(), False),
        ("FILTER now() > renewal", {"renewal"}, set(), True),
        ("FILTER x IN y", {"x", "y"}, set(), False),
        ("FILTER *", set(), set(), False),
        ("FILTER match_all", set(), set(), False),
        ('FILTER NOT (last > "now-1d")', {"last"}, set(), True),
        ('FILTER x BETWEEN "2020-01-01" AND "2021-01-01"', {"x"}, set(), False),
        ('FILTER x == "now-1d"', {"x"}, set(), True),
        ('FILTER x LIKE "now-1d"', {"x"}, set(), False),  # a pattern, not date math
    ],
)
def test_fields_events_time(text: str, fields: set[str], events: set[str], timed: bool) -> None:
    f = compile_filter(text)
    assert f.fields == fields
    assert f.events == events
    assert f.time_dependent is timed
    assert f.includes == frozenset()
    assert f.text == text


def test_alias_and_statement() -> None:
    f = compile_filter('FILTER plan == "pro" FROM user LIMIT 5 ALIAS Pros')
    assert f.alias == "Pros"
    assert f.statement.from_ == "user" and f.statement.limit == 5


def test_compile_set_includes_are_transitive() -> None:
    got = compile_set(
        {
            "a": "FILTER AND (INCLUDE b, x > 1)",
            "b": "FILTER OR (INCLUDE c, timewindow(buy, 1, 7))",
            "c": 'FILTER last_seen > "now-1d"',
            "d": 'FILTER y == "z"',
        }
    )
    assert got["a"].includes == {"b"}
    assert got["a"].fields == {"x", "buy", "last_seen"}
    assert got["a"].events == {"buy"}
    assert got["a"].time_dependent and not got["d"].time_dependent
    assert got["b"].includes == {"c"}
    p = Profile("u", fields={"x": 2, "last_seen": rfc(NOW - 3600 * 10**9)})
    assert got["a"].matches(p, NOW)
    assert got["a"].next_change(p, NOW) == NOW + 23 * 3600 * 10**9


def test_compile_set_matches_slugs_ignoring_case() -> None:
    got = compile_set({"Buyers": "FILTER x > 1", "a": "FILTER INCLUDE buyers"})
    assert got["a"].includes == {"buyers"}


@pytest.mark.parametrize(
    ("texts", "path"),
    [
        ({"a": "FILTER INCLUDE a"}, "a -> a"),
        ({"a": "FILTER INCLUDE b", "b": "FILTER INCLUDE a"}, "a -> b -> a"),
        (
            {
                "a": "FILTER AND (x, INCLUDE b)",
                "b": "FILTER INCLUDE c",
                "c": "FILTER NOT INCLUDE a",
            },
            "a -> b -> c -> a",
        ),
        ({"x": "FILTER y", "a": "FILTER INCLUDE b", "b": "FILTER OR (INCLUDE b)"}, "b -> b"),
    ],
)
def test_cycles_are_refused_with_their_path(texts: dict[str, str], path: str) -> None:
    with pytest.raises(FilterQLError, match="cycle") as info:
        compile_set(texts)
    assert path in str(info.value)


def test_unknown_include_names_the_slug() -> None:
    with pytest.raises(FilterQLError, match="unknown audience 'ghost'"):
        compile_set({"a": "FILTER INCLUDE ghost"})
    with pytest.raises(FilterQLError, match="INCLUDE ghost"):
        compile_filter("FILTER INCLUDE ghost")


def _chain(n: int) -> dict[str, str]:
    texts = {f"s{i}": f"FILTER INCLUDE s{i + 1}" for i in range(n)}
    texts[f"s{n}"] = "FILTER x > 1"
    return texts


def test_include_depth_100_is_fine_and_101_is_refused() -> None:
    ok = compile_set(_chain(MAX_INCLUDE_DEPTH))
    assert ok["s0"].matches(Profile("u", fields={"x": 2}), NOW)
    with pytest.raises(FilterQLError, match="deeper than 100") as info:
        compile_set(_chain(MAX_INCLUDE_DEPTH + 1))
    assert "s0 -> s1 -> s2" in str(info.value) or "s1 -> s2" in str(info.value)


def test_resolver_given_by_the_engine() -> None:
    """The engine passes resolve(slug) -> compiled Filter; errors name the INCLUDE."""
    store = {"pros": compile_filter('FILTER plan == "pro"')}

    def resolve(slug: str) -> Filter:
        if slug not in store:
            raise FilterQLError(f"no audience {slug}")
        return store[slug]

    f = compile_filter("FILTER AND (INCLUDE pros, visits > 1)", resolve)
    assert f.matches(customer(), NOW) and f.includes == {"pros"} and f.fields == {"plan", "visits"}
    with pytest.raises(FilterQLError, match="INCLUDE nope: no audience nope") as info:
        compile_filter("FILTER AND (x, INCLUDE nope)", resolve)
    assert (info.value.line, info.value.column) == (1, 16)


def test_lazy_resolver_cycles_are_caught() -> None:
    """A resolver that compiles on demand (calling compile_filter again) still cannot loop."""
    texts = {"a": "FILTER INCLUDE b", "b": "FILTER INCLUDE c", "c": "FILTER INCLUDE b"}

    def resolve(slug: str) -> Filter:
        return compile_filter(texts[slug], resolve)

    with pytest.raises(FilterQLError, match="cycle: b -> c -> b"):
        compile_filter(texts["a"], resolve)


def test_included_time_dependence_propagates() -> None:
    got = compile_set({"recent": 'FILTER seen > "now-2d"', "top": "FILTER NOT INCLUDE recent"})
    p = Profile("u", fields={"seen": rfc(NOW)})
    assert got["top"].time_dependent
    assert not got["top"].matches(p, NOW)
    assert got["top"].next_change(p, NOW) == NOW + 2 * DAY
