"""next_change: qlbridge's vm/datemath_test.go boundaries, timewindow, calendars, AND/OR/NOT nesting.

qlbridge's DateConverter reports a *possible* boundary (and "now" for values sitting exactly on a
bound). audiencehub's next_change is exact: the first instant at which ``matches`` really flips.
Where the two differ the expected value here says so. Date comparisons are at whole seconds, as in
qlbridge (``t.Unix()``), so a strict ``<`` against a bound flips one second after the bound.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.filterql.helpers import DAY, HOUR, MINUTE, check, rfc
from workers.filterql import Filter, FilterQLError, compile_filter, compile_set
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_S, parse_rfc3339

S = NS_PER_S
T1 = parse_rfc3339("2026-03-10T12:00:00Z")


def profile(fields: dict[str, Any], **occ: list[int]) -> Profile:
    return Profile("u", fields=fields, occurrences=dict(occ))


def assert_exact(f: Filter, p: Profile, now: int, expected: int | None) -> None:
    """next_change equals ``expected`` and really is the first flip."""
    got = f.next_change(p, now)
    assert got == expected, (
        f"{f.text}: expected {expected and rfc(expected)}, got {got and rfc(got)}"
    )
    before = f.matches(p, now)
    if got is not None:
        assert f.matches(p, got - 1) == before
        assert f.matches(p, got) != before
        for frac in (0.1, 0.5, 0.9):
            assert f.matches(p, now + int((got - now) * frac)) == before


# -- qlbridge TestDateBoundaries: now = T1, last_event = T1 - 12h -----------------------------------
BOUNDARIES = [
    # (filter, matches now, exact next change; qlbridge's answer in the comment)
    ('FILTER last_event < "now-1d"', False, T1 + 12 * HOUR + S),  # qlbridge: T1+12h
    ('FILTER "now-1d" > last_event', False, T1 + 12 * HOUR + S),  # swapped operands
    ('FILTER OR (\n last_event < "now-6d"\n last_event < "now-1d"\n)', False, T1 + 12 * HOUR + S),
    ('FILTER last_event > "now-1d"', True, T1 + 12 * HOUR),  # qlbridge: same
    ('FILTER  "now-1d" < last_event', True, T1 + 12 * HOUR),
    ('FILTER last_event < "now-2d"', False, T1 + 36 * HOUR + S),  # qlbridge: T1+36h
    ('FILTER  "now-2d" > last_event', False, T1 + 36 * HOUR + S),
    ('FILTER  "now-2d" >= last_event', False, T1 + 36 * HOUR),  # >= flips on the bound itself
    ('FILTER "now+1d" < last_event', False, None),  # false for ever
    ('FILTER last_event > "now+1d"', False, None),
    ('FILTER "now+1d" <= last_event', False, None),
    ('FILTER last_event < "now+1h"', True, None),  # true for ever
    ('FILTER "now+1h" > last_event', True, None),
    (
        'FILTER OR (\n "now+1h" > last_event\n x BETWEEN a AND b\n exists(not_a_field)\n)',
        True,
        None,
    ),
    ('FILTER OR (\n "now+1h" > last_event\n last_event IN ("a", "b")\n)', True, None),
]


@pytest.mark.parametrize(("text", "now_match", "expected"), BOUNDARIES)
def test_qlbridge_date_boundaries(text: str, now_match: bool, expected: int | None) -> None:
    p = profile({"last_event": rfc(T1 - 12 * HOUR), "subscription_expires": rfc(T1 + 6 * DAY)})
    f = compile_filter(text)
    assert f.time_dependent
    assert check(text, p, T1) is now_match
    assert_exact(f, p, T1, expected)


def test_qlbridge_date_math_with_include() -> None:
    """TestDateMath: INCLUDE is resolved and its date math counts too."""
    p = profile(
        {
            "event": "login",
            "last_event": rfc(T1),
            "signedup": rfc(T1),
            "subscription_expires": rfc(T1 + 6 * DAY),
        }
    )
    known = compile_set(
        {
            "signedup_onedayago": 'FILTER signedup < "now-2d"',
            "subscription_expires_oneweek": 'FILTER subscription_expires < "now+1w"',
        }
    )
    now = T1 + MINUTE
    f = compile_filter('FILTER last_event < "now-1d"')
    assert not f.matches(p, now)
    assert_exact(f, p, now, T1 + DAY + S)
    g = compile_filter(
        'FILTER AND (EXISTS event, last_event < "now-1d", INCLUDE signedup_onedayago)',
        known.__getitem__,
    )
    assert not g.matches(p, now)
    assert g.time_dependent and g.fields >= {"event", "last_event", "signedup"}
    assert_exact(g, p, now, T1 + 2 * DAY + S)
    assert known["subscription_expires_oneweek"].matches(p, now)


@pytest.mark.parametrize(
    "text",
    [
        'FILTER AND ( last_event > "now-3x")',
        'FILTER AND ( last_event == "now-")',
        'FILTER AND ( last_event == "now+")',
        'FILTER AND ( last_event == "now+now")',
    ],
)
def test_qlbridge_bad_date_math_is_a_compile_error(text: str) -> None:
    with pytest.raises(FilterQLError, match="not valid date math"):
        compile_filter(text)


def test_qlbridge_good_date_math_and_unknown_include() -> None:
    compile_filter('FILTER AND ( last_event == "now-3d")')
    compile_filter('FILTER AND ( last_event == "now")')
    with pytest.raises(FilterQLError, match="not_valid_lookup"):
        compile_filter("FILTER AND (INCLUDE not_valid_lookup)")


# -- qlbridge TestDateBoundaryForBetween: today = T1 -------------------------------------------------
BETWEENS = [
    # (name, filter, last_event, matches now, exact next change)
    (
        "within_window_1_day_before_lower_bound",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1 - DAY,
        True,
        T1 + DAY,
    ),
    (
        "within_window_including_other_filters",
        'FILTER AND( last_event BETWEEN "now-2d" AND "now+3d", exists subscription_expires )',
        T1 - DAY,
        True,
        T1 + DAY,
    ),
    (
        "exact_current_time",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1,
        True,
        T1 + 2 * DAY,
    ),
    (
        "just_inside_lower",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1 - 2 * DAY + MINUTE,
        True,
        T1 + MINUTE,
    ),
    (
        "just_inside_upper",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1 + 3 * DAY - MINUTE,
        True,
        T1 + 5 * DAY - MINUTE,
    ),
    # On the lower bound (exclusive) it is out, and the window only moves away: never again.
    # (qlbridge answers "now", a re-check.)
    (
        "exact_boundary_lower",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1 - 2 * DAY,
        False,
        None,
    ),
    # On the upper bound it is out; one second later the window reaches past it. (qlbridge: now.)
    (
        "exact_boundary_upper",
        'FILTER last_event BETWEEN "now-2d" AND "now+3d"',
        T1 + 3 * DAY,
        False,
        T1 + S,
    ),
    (
        "multiple_date_math",
        'FILTER AND(last_event BETWEEN "now-2d" AND "now+3d", subscription_expires > "now+1d")',
        T1,
        True,
        T1 + 2 * DAY,
    ),
    # Right of the window: NOT BETWEEN holds until the window's upper bound passes it.
    (
        "not_condition",
        'FILTER NOT(last_event BETWEEN "now-2d" AND "now+3d")',
        T1 + 4 * DAY,
        True,
        T1 + DAY + S,
    ),
    (
        "multiple_between",
        'FILTER AND( last_event BETWEEN "now-2d" AND "now+3d", subscription_expires BETWEEN "now+1d" AND "now+7d")',
        T1 - DAY,
        True,
        T1 + DAY,
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "last", "now_match", "expected"), BETWEENS, ids=[b[0] for b in BETWEENS]
)
def test_qlbridge_between_boundaries(
    name: str, text: str, last: int, now_match: bool, expected: int | None
) -> None:
    p = profile({"last_event": rfc(last), "subscription_expires": rfc(T1 + 6 * DAY)})
    f = compile_filter(text)
    assert f.matches(p, T1) is now_match
    assert_exact(f, p, T1, expected)


# -- timewindow ------------------------------------------------------------------------------------
DAY0 = parse_rfc3339("2026-01-05T09:00:00Z")


def test_timewindow_issue_scenario() -> None:
    """Purchases on day 0, 3 and 5: in from day 3; the 2nd most recent (day 3) leaves on day 10."""
    f = compile_filter("FILTER timewindow(purchase, 2, 7)")
    assert f.events == {"purchase"} and f.time_dependent
    p = profile({}, purchase=[DAY0])
    assert not f.matches(p, DAY0) and f.next_change(p, DAY0) is None
    p = profile({}, purchase=[DAY0, DAY0 + 3 * DAY])
    assert f.matches(p, DAY0 + 3 * DAY)
    assert_exact(f, p, DAY0 + 3 * DAY, DAY0 + 7 * DAY)  # day 0 leaves first
    p = profile({}, purchase=[DAY0, DAY0 + 3 * DAY, DAY0 + 5 * DAY])
    assert_exact(f, p, DAY0 + 5 * DAY, DAY0 + 10 * DAY)
    assert f.matches(p, DAY0 + 10 * DAY - S)
    assert not f.matches(p, DAY0 + 10 * DAY)
    assert not f.matches(p, DAY0 + 10 * DAY + S)
    assert f.next_change(p, DAY0 + 10 * DAY) is None


def test_timewindow_counts_while_now_before_t_plus_d() -> None:
    f = compile_filter("FILTER timewindow(login, 1, 1)")
    p = profile({}, login=[DAY0])
    assert f.matches(p, DAY0 + DAY - 1)
    assert not f.matches(p, DAY0 + DAY)
    assert_exact(f, p, DAY0, DAY0 + DAY)


def test_timewindow_fractional_days_and_field_fallback() -> None:
    f = compile_filter("FILTER timewindow(visits, 2, 0.5)")
    p = profile({"visits": [rfc(DAY0), rfc(DAY0 + HOUR)]})
    assert f.matches(p, DAY0 + HOUR)
    assert_exact(f, p, DAY0 + HOUR, DAY0 + 12 * HOUR)
    assert f.fields == {"visits"} and f.events == {"visits"}


def test_not_timewindow_enters_when_window_empties() -> None:
    f = compile_filter("FILTER NOT timewindow(purchase, 1, 30)")
    p = profile({}, purchase=[DAY0])
    assert not f.matches(p, DAY0 + DAY)
    assert_exact(f, p, DAY0 + DAY, DAY0 + 30 * DAY)


# -- nested AND / OR / NOT ---------------------------------------------------------------------------


def test_and_with_a_false_part_that_never_changes_never_flips() -> None:
    f = compile_filter('FILTER AND (timewindow(purchase, 1, 7), plan == "pro")')
    p = profile({"plan": "free"}, purchase=[DAY0])
    assert not f.matches(p, DAY0)
    assert f.next_change(p, DAY0) is None  # the timewindow flips on day 7, but AND stays false


def test_and_true_flips_at_first_part_to_flip() -> None:
    f = compile_filter('FILTER AND (timewindow(purchase, 1, 7), last_login > "now-3d")')
    p = profile({"last_login": rfc(DAY0)}, purchase=[DAY0])
    assert_exact(f, p, DAY0, DAY0 + 3 * DAY)


def test_and_false_becomes_true_when_both_parts_hold() -> None:
    """Neither part holds now; a becomes true on day 2 (and stays), b only from day 5."""
    f = compile_filter('FILTER AND (signup < "now-2d", renewal < "now+1d")')
    p = profile({"signup": rfc(DAY0), "renewal": rfc(DAY0 + 6 * DAY)})
    assert not f.matches(p, DAY0)
    assert_exact(f, p, DAY0, DAY0 + 5 * DAY + S)


def test_or_true_with_a_static_true_part_never_flips() -> None:
    f = compile_filter('FILTER OR (last_login > "now-1d", vip == true)')
    p = profile({"last_login": rfc(DAY0), "vip": True})
    assert f.next_change(p, DAY0) is None


def test_or_true_stays_while_another_part_takes_over() -> None:
    """a holds until day 1, b holds until day 3: OR stays true until day 3."""
    f = compile_filter('FILTER OR (last_login > "now-1d", last_visit > "now-3d")')
    p = profile({"last_login": rfc(DAY0), "last_visit": rfc(DAY0)})
    assert_exact(f, p, DAY0, DAY0 + 3 * DAY)


def test_not_of_and_of_or() -> None:
    f = compile_filter(
        'FILTER NOT AND (OR (last_login > "now-1d", last_visit > "now-3d"), timewindow(purchase, 1, 2))'
    )
    p = profile({"last_login": rfc(DAY0), "last_visit": rfc(DAY0)}, purchase=[DAY0])
    assert not f.matches(p, DAY0)
    assert_exact(f, p, DAY0, DAY0 + 2 * DAY)  # the purchase leaves its 2-day window first


def test_include_carries_time() -> None:
    known = compile_set({"recent": 'FILTER last_login > "now-7d"'})
    f = compile_filter('FILTER AND (INCLUDE recent, plan == "pro")', known.__getitem__)
    p = profile({"last_login": rfc(DAY0), "plan": "pro"})
    assert f.time_dependent and f.fields == {"last_login", "plan"}
    assert_exact(f, p, DAY0, DAY0 + 7 * DAY)


def test_unknown_parts_do_not_hide_a_flip() -> None:
    """AND(moving, unknown) is unknown now; it becomes false when the moving part does. A group
    AND stops at its first part that is not true (qlbridge), so AND(unknown, moving) never moves."""
    f = compile_filter('FILTER NOT AND (last_login > "now-1d", missing_flag)')
    p = profile({"last_login": rfc(DAY0)})
    assert not f.matches(p, DAY0)
    assert_exact(f, p, DAY0, DAY0 + DAY)
    g = compile_filter('FILTER NOT AND (missing_flag, last_login > "now-1d")')
    assert not g.matches(p, DAY0)
    assert_exact(g, p, DAY0, None)


# -- calendar date math (M, y) and calendar functions ------------------------------------------------


def test_months_follow_go_adddate_overflow() -> None:
    """now-1M on Mar 31 is "Feb 31" = Mar 3; on Apr 1 it is Mar 1: date math can step back."""
    f = compile_filter('FILTER x > "now-1M"')
    p = profile({"x": "2026-03-02T00:00:00Z"})
    mar31 = parse_rfc3339("2026-03-31T00:00:00Z")
    assert not f.matches(p, mar31)  # Mar 2 > Mar 3? no
    apr1 = parse_rfc3339("2026-04-01T00:00:00Z")
    assert_exact(f, p, mar31, apr1)  # Mar 2 > Mar 1: true again at midnight
    assert_exact(f, p, apr1, parse_rfc3339("2026-04-02T00:00:00Z"))


@pytest.mark.parametrize("unit", ["M", "y"])
def test_calendar_units_flip_exactly(unit: str) -> None:
    f = compile_filter(f'FILTER x > "now-1{unit}"')
    x = parse_rfc3339("2024-02-29T10:00:00Z")
    p = profile({"x": rfc(x)})
    now = parse_rfc3339("2024-03-01T00:00:00Z")
    got = f.next_change(p, now)
    assert got is not None
    assert f.matches(p, got - 1) and not f.matches(p, got)
    # y: AddDate(2025-02-28, -1y) is still before x; on Mar 1 2025 it jumps to 2024-03-01.
    expected = parse_rfc3339("2024-03-29T10:00:00Z" if unit == "M" else "2025-03-01T00:00:00Z")
    assert got == expected


def test_daysago_jumps_to_threshold() -> None:
    f = compile_filter("FILTER daysago(signup) > 30")
    p = profile({"signup": rfc(DAY0)})
    assert_exact(f, p, DAY0, DAY0 + 31 * DAY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FILTER dayofweek() == 3", "2026-01-07T00:00:00Z"),  # DAY0 is a Monday
        ("FILTER hourofday() IN (11, 12)", "2026-01-05T11:00:00Z"),
        ("FILTER mm() == 6", "2026-06-01T00:00:00Z"),
        ("FILTER yy() > 26", "2027-01-01T00:00:00Z"),
        ('FILTER yymm() == "2602"', "2026-02-01T00:00:00Z"),
        ("FILTER hourofweek() == 0", "2026-01-11T00:00:00Z"),
        ("FILTER dayofweek() == 9", None),  # never: one full week checked
        ('FILTER now() > "2026-02-01"', "2026-02-01T00:00:01Z"),
    ],
)
def test_calendar_functions(text: str, expected: str | None) -> None:
    f = compile_filter(text)
    assert_exact(f, profile({}), DAY0, parse_rfc3339(expected) if expected else None)


def test_static_filter_has_no_next_change() -> None:
    f = compile_filter('FILTER plan == "pro"')
    assert not f.time_dependent
    assert f.next_change(profile({"plan": "pro"}), DAY0) is None


def test_two_moving_values_cannot_be_compared() -> None:
    with pytest.raises(FilterQLError, match="moving time"):
        compile_filter('FILTER daysago(x) > "now-1d"')
    with pytest.raises(FilterQLError, match="moving time"):
        compile_filter('FILTER tostring(now()) == "x"')


@pytest.mark.parametrize(
    ("text", "unbudgeted"),
    [
        ("FILTER timewindow(purchase, 2, 7)", True),
        ('FILTER last_seen > "now-7d"', True),
        ('FILTER NOT signup > "now-30d"', True),
        ("FILTER dayofweek() == 1", True),
        ("FILTER daysago(signup) > 3", True),
        ('FILTER AND (plan == "pro", timewindow(purchase, 1, 7))', False),
        ("FILTER AND (dayofweek() == 1, dayofweek() == 2)", False),
    ],
)
def test_a_search_that_cannot_spend_its_budget_answers_as_with_one(
    text: str, unbudgeted: bool
) -> None:
    """Filter.next_change skips the budget (and its ContextVars) only for a filter whose search is
    one loop of at most CAP candidates over arithmetic steps; its answers are the budgeted ones."""
    f = compile_filter(text)
    assert f._unbudgeted is unbudgeted
    budgeted = compile_filter(text)
    budgeted._unbudgeted = False
    now = T1
    for days in (0, 1, 3, 6, 10, 40):
        p = profile(
            {"plan": "pro", "last_seen": rfc(T1 - days * DAY), "signup": rfc(T1 - days * DAY)},
            purchase=[T1 - days * DAY, T1 - days * DAY // 2],
        )
        for at in (now, now + 5 * HOUR, now + 9 * DAY):
            assert f.next_change(p, at) == budgeted.next_change(p, at)
