"""explain(): the filter as a tree of clause values, what decided it, and the next change in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.filterql.helpers import DAY, HOUR, rfc
from workers.filterql import CNode, Filter, compile_filter, compile_set, parse_statements
from workers.filterql.compiler import compile_statement
from workers.filterql.explain import Clause, Explanation, explain, render
from workers.filterql.source import one_line
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_S, parse_rfc3339

NOW = parse_rfc3339("2026-03-10T12:00:00Z")
S = NS_PER_S


def at(text: str) -> int:
    return parse_rfc3339(text)


def user(**fields: object) -> Profile:
    return Profile(
        "u",
        fields=dict(fields),
        occurrences={"purchase": [at("2026-03-07T09:12:00Z")]},
        created=at("2026-01-01T00:00:00Z"),
    )


def ex(
    text: str, p: Profile, now: int = NOW, includes: dict[str, Filter] | None = None
) -> Explanation:
    f = compile_filter(text, (includes or {}).__getitem__)
    e = explain(f, p, now)
    assert e.matches == f.matches(p, now)
    assert e.root.node is f.root, "the explanation reads the compiled tree itself"
    return e


def sentence(text: str, p: Profile, now: int = NOW, **kw: dict[str, Filter]) -> str:
    e = ex(text, p, now, kw.get("includes"))
    assert e.next_change is not None
    return e.next_change.sentence


# -- the tree ---------------------------------------------------------------------------------------


def test_the_issue_example_tree() -> None:
    e = ex("FILTER AND (score >= 20, timewindow(purchase, 2, 7))", user(score=42))
    assert e.render_text().splitlines() == [
        "AND (score >= 20, timewindow(purchase, 2, 7))  false    "
        "<- decided by timewindow(purchase, 2, 7)",
        "├─ score >= 20                                 true     score = 42",
        "└─ timewindow(purchase, 2, 7)                  false    "
        "1 in window: 2026-03-07T09:12:00Z (needs 2)",
        "next change: never (with no new data)",
    ]
    assert e.root.decided_by == [1]
    assert [c.decides for c in e.root.children] == [False, True]


def test_each_clause_is_the_compiled_node_with_its_own_value() -> None:
    f = compile_filter('FILTER OR (plan == "pro", AND (visits > 3, NOT vip))')
    p = user(plan="free", visits=5, vip=False)
    e = explain(f, p, NOW)

    def pairs(c: Clause, n: CNode) -> None:
        assert c.node is n
        assert c.value == n.evaluate(p, NOW)
        if c.kind in ("and", "or", "not"):
            for ck, nk in zip(c.children, n.children, strict=True):
                pairs(ck, nk)

    pairs(e.root, f.root)
    assert e.root.value is True and e.root.decided_by == [1]


@pytest.mark.parametrize(
    ("text", "value", "decided"),
    [
        ("FILTER AND (a == 1, b == 2, c == 3)", False, [1]),  # the first part that is not true
        ("FILTER a == 1 AND b == 2 AND c == 3", False, [1, 2]),  # infix: every part not true
        ("FILTER AND (a == 1, flag)", None, [1]),  # an unknown part makes it unknown
        ("FILTER AND (a == 1, a < 5)", True, [0, 1]),  # every part was needed
        ("FILTER OR (b == 2, a == 1, c == 1)", True, [1]),  # the true parts of a true OR
        ("FILTER OR (b == 2, flag)", False, [0, 1]),  # every part failed
    ],
)
def test_deciding_clauses(text: str, value: bool | None, decided: list[int]) -> None:
    e = ex(text, user(a=1, b=9, c=9))
    assert e.root.value is value
    assert e.root.decided_by == decided
    assert [i for i, c in enumerate(e.root.children) if c.decides] == decided


def test_not_is_decided_by_its_child_and_unknown_stays_unknown() -> None:
    e = ex("FILTER NOT flag", user())
    assert e.root.kind == "not" and e.root.value is None and e.root.decided_by == [0]
    assert e.root.children[0].value is None
    assert e.root.children[0].reads[0].shown == "missing"


def test_leaves_show_what_they_read() -> None:
    e = ex(
        'FILTER AND (tolower(plan) == "pro", scores.momentum * 2 > 100, last_seen > "now-7d", '
        'EXISTS email, tags NOT IN ("x"))',
        user(plan="Pro", scores={"momentum": 80}, last_seen="2026-03-09T00:00:00Z", tags=["a"]),
    )
    notes = [[(r.text, r.shown) for r in c.reads] for c in e.root.children]
    assert notes == [
        [("tolower(plan)", '"pro"'), ("plan", '"Pro"')],
        [("scores.momentum * 2", "160"), ("scores.momentum", "80")],
        [("last_seen", "2026-03-09T00:00:00Z"), ('"now-7d"', "2026-03-03T12:00:00Z")],
        [("email", "missing")],
        [("tags", '["a"]')],
    ]
    negated = e.root.children[4]
    assert negated.kind == "not_in" and negated.text == 'tags NOT IN ("x")' and not negated.children


def test_a_window_shows_the_count_and_the_occurrences_inside_it() -> None:
    p = Profile(
        "u",
        occurrences={
            "purchase": [
                at("2026-02-01T00:00:00Z"),  # outside the 7 days
                at("2026-03-05T00:00:00Z"),
                at("2026-03-09T00:00:00Z"),
                at("2026-03-12T00:00:00Z"),  # in the future: counts at once
            ]
        },
    )
    e = ex("FILTER timewindow(purchase, 2, 7)", p)
    w = e.root.window
    assert w is not None and e.root.value is True
    assert (w.event, w.need, w.days, w.count, w.total) == ("purchase", 2, 7, 3, 4)
    assert w.since == NOW - 7 * DAY
    assert [rfc(t) for t in w.times] == [
        "2026-03-05T00:00:00Z",
        "2026-03-09T00:00:00Z",
        "2026-03-12T00:00:00Z",
    ]
    assert e.root.changes_at == at("2026-03-16T00:00:00Z")


def test_include_is_explained_inline() -> None:
    inc = compile_set({"buyers": "FILTER timewindow(purchase, 1, 30)"})
    e = ex("FILTER AND (INCLUDE buyers, score > 3)", user(score=5), includes=inc)
    include = e.root.children[0]
    assert include.kind == "include" and include.include == "buyers"
    assert include.decided_by == [0]
    (inner,) = include.children
    assert inner.kind == "timewindow" and inner.text == "timewindow(purchase, 1, 30)"
    assert inner.source.text == "FILTER timewindow(purchase, 1, 30)"
    lines = e.render_text().splitlines()
    assert lines[1].startswith("├─ INCLUDE buyers") and lines[1].endswith("audience buyers")
    assert lines[2].startswith("│  └─ timewindow(purchase, 1, 30)")


# -- source slices ----------------------------------------------------------------------------------


def test_clause_texts_are_source_slices_with_their_parentheses() -> None:
    text = """FILTER AND (
        plan IN ("pro", "team")   -- paying
        (score > 1 OR score < 0)
        NOT (visits BETWEEN 1 AND 10)
        x IN ()
    )"""
    e = ex(text, user(plan="pro", score=3, visits=4))
    assert e.root.text == text[len("FILTER ") :]
    assert [c.text for c in e.root.children] == [
        'plan IN ("pro", "team")',
        "score > 1 OR score < 0",
        "NOT (visits BETWEEN 1 AND 10)",
        "x IN ()",
    ]
    assert [(c.line, c.column) for c in e.root.children] == [(2, 9), (3, 10), (4, 9), (5, 9)]
    first = e.render_text().splitlines()[0]
    assert first.startswith('AND (plan IN ("pro", "team") (score > 1 OR score < 0) NOT (vis')
    assert "--" not in first


def test_infix_forms_keep_their_parentheses() -> None:
    e = ex('FILTER (score > 1) AND (plan == "pro") OR (NOT (vip))', user(score=3, plan="pro"))
    assert e.root.text == '(score > 1) AND (plan == "pro") OR (NOT (vip))'
    assert [c.text for c in e.root.children] == [
        '(score > 1) AND (plan == "pro")',
        "NOT (vip)",
    ]


def test_slices_come_from_the_parser_not_a_second_reading() -> None:
    """The parser's spans hold where a re-lexing explain went wrong: a comment just inside a
    bracket, a name with "--" in it, keyword spacing, and a long text cut on one line."""
    e = ex("FILTER ( -- why\n a == 1) AND b == 2", user())
    assert e.root.text == "( -- why\n a == 1) AND b == 2"
    assert e.render_text().splitlines()[0].startswith("(a == 1) AND b == 2  false")
    e = ex("FILTER a--b == 1", user())
    assert e.root.text == "a--b == 1" and e.root.reads[0].text == "a--b"
    e = ex('FILTER tags NOT\n   IN ("x  y")', user(tags=["a"]))
    assert e.render_text().splitlines()[0].startswith('tags NOT IN ("x  y")  true')
    assert one_line("x IN (…)") == "x IN (…)"  # a label that is not FilterQL stays as it is


def test_positions_in_a_file_of_several_statements() -> None:
    text = 'FILTER a == 1 ALIAS one;\n\n  -- two\n  FILTER OR (b == 2,\n   c == "x;y") ALIAS two\n'
    st = parse_statements(text)[1]
    f = compile_statement(st, text)
    e = explain(f, user(b=2), NOW)
    assert [(c.text, c.line, c.column) for c in e.root.children] == [
        ("b == 2", 4, 14),
        ('c == "x;y"', 5, 4),
    ]


# -- the next change, in words ----------------------------------------------------------------------


def test_window_exit_sentence() -> None:
    assert sentence("FILTER timewindow(purchase, 1, 7)", user()) == (
        "exits 2026-03-14T09:12:00Z when the purchase of 2026-03-07T09:12:00Z leaves the 7-day "
        "window"
    )


def test_window_exit_sentence_counts_what_is_left() -> None:
    p = Profile(
        "u", occurrences={"purchase": [at("2026-03-05T00:00:00Z"), at("2026-03-09T00:00:00Z")]}
    )
    e = ex("FILTER AND (score >= 0, timewindow(purchase, 2, 0.5)) OR timewindow(purchase, 2, 7)", p)
    assert e.next_change is not None
    assert e.next_change.sentence == (
        "exits 2026-03-12T00:00:00Z when the purchase of 2026-03-05T00:00:00Z leaves the 7-day "
        "window (1 left in it, 2 needed)"
    )
    assert e.next_change.path == [1] and e.next_change.clause == "timewindow(purchase, 2, 7)"
    assert not e.next_change.enters and not e.next_change.recheck


def test_negated_window_enters() -> None:
    assert sentence("FILTER NOT timewindow(purchase, 1, 7)", user()) == (
        "enters 2026-03-14T09:12:00Z when the purchase of 2026-03-07T09:12:00Z leaves the 7-day "
        "window"
    )


def test_date_math_sentences() -> None:
    p = user(last_seen="2026-03-08T00:00:00Z", renewal="2026-03-20T00:00:00Z")
    assert sentence('FILTER last_seen > "now-7d"', p) == (
        'exits 2026-03-15T00:00:00Z when last_seen > "now-7d" stops holding: '
        "last_seen (2026-03-08T00:00:00Z) turns 7 days old"
    )
    # strict at whole seconds: "<" becomes true one second after the date turns 7 days old
    assert sentence('FILTER last_seen < "now-7d"', p) == (
        'enters 2026-03-15T00:00:01Z when last_seen < "now-7d" starts to hold: '
        "last_seen (2026-03-08T00:00:00Z) is more than 7 days old"
    )
    assert sentence('FILTER NOT (last_seen > "now-7d")', p) == (
        'enters 2026-03-15T00:00:00Z when last_seen > "now-7d" stops holding: '
        "last_seen (2026-03-08T00:00:00Z) turns 7 days old"
    )
    assert sentence('FILTER renewal < "now+3d"', p) == (
        'enters 2026-03-17T00:00:01Z when renewal < "now+3d" starts to hold: '
        "renewal (2026-03-20T00:00:00Z) is less than 3 days away"
    )
    assert sentence('FILTER last_seen > "now-1M"', p) == (
        'exits 2026-04-08T00:00:00Z when last_seen > "now-1M" stops holding: '
        "last_seen (2026-03-08T00:00:00Z) turns 1 month old"
    )
    assert sentence('FILTER last_seen >= "now-12h"', user(last_seen="2026-03-10T06:00:00Z")) == (
        'exits 2026-03-10T18:00:01Z when last_seen >= "now-12h" stops holding: '
        "last_seen (2026-03-10T06:00:00Z) is more than 12 hours old"
    )


def test_now_and_literal_dates() -> None:
    assert sentence('FILTER now() < "2026-04-01"', user()) == (
        'exits 2026-04-01T00:00:00Z when now() < "2026-04-01" stops holding: '
        'now reaches "2026-04-01"'
    )
    p = user(dates=["2026-03-01T00:00:00Z", "2026-03-11T00:00:00Z"])
    assert sentence("FILTER dates > now()", p) == (
        "exits 2026-03-11T00:00:00Z when dates > now() stops holding: "
        "now reaches 2026-03-11T00:00:00Z (in dates)"
    )


def test_between_sentences() -> None:
    inside = user(last_event="2026-03-09T00:00:00Z")
    assert sentence('FILTER last_event BETWEEN "now-2d" AND "now+3d"', inside) == (
        'exits 2026-03-11T00:00:00Z when last_event BETWEEN "now-2d" AND "now+3d" stops holding: '
        "last_event (2026-03-09T00:00:00Z) turns 2 days old"
    )
    ahead = user(last_event="2026-03-20T00:00:00Z")
    assert sentence('FILTER last_event BETWEEN "now-2d" AND "now+3d"', ahead) == (
        'enters 2026-03-17T00:00:01Z when last_event BETWEEN "now-2d" AND "now+3d" starts to '
        "hold: last_event (2026-03-20T00:00:00Z) is less than 3 days away"
    )
    campaign = user(start="2026-03-12T00:00:00Z", end="2026-03-20T00:00:00Z")
    assert sentence("FILTER now() BETWEEN start AND end", campaign) == (
        "enters 2026-03-12T00:00:01Z when now() BETWEEN start AND end starts to hold: "
        "now passes start (2026-03-12T00:00:00Z)"
    )
    assert sentence("FILTER now() BETWEEN start AND end", campaign, at("2026-03-15T00:00:00Z")) == (
        "exits 2026-03-20T00:00:00Z when now() BETWEEN start AND end stops holding: "
        "now reaches end (2026-03-20T00:00:00Z)"
    )
    assert sentence('FILTER last_event NOT BETWEEN "now-2d" AND "now+3d"', inside) == (
        'enters 2026-03-11T00:00:00Z when last_event NOT BETWEEN "now-2d" AND "now+3d" starts to '
        "hold: last_event (2026-03-09T00:00:00Z) turns 2 days old"
    )


def test_stepping_values_say_from_what_to_what() -> None:
    assert sentence("FILTER daysago(signup) > 40", user(signup="2026-02-01T08:30:00Z")) == (
        "enters 2026-03-14T08:30:00Z when daysago(signup) > 40 starts to hold: "
        "daysago(signup) goes from 40 to 41"
    )
    assert sentence("FILTER dayofweek() == 2", user()) == (  # a Tuesday
        "exits 2026-03-11T00:00:00Z when dayofweek() == 2 stops holding: "
        "dayofweek() goes from 2 to 3"
    )


def test_include_sentences() -> None:
    inc = compile_set(
        {
            "buyers": "FILTER timewindow(purchase, 1, 30)",
            "loyal": "FILTER AND (INCLUDE buyers, EXISTS email)",
        }
    )
    p = user(email="a@b.c")
    assert sentence("FILTER INCLUDE loyal", p, includes=inc) == (
        "exits 2026-04-06T09:12:00Z when INCLUDE loyal stops matching because INCLUDE buyers "
        "stops matching: the purchase of 2026-03-07T09:12:00Z leaves the 30-day window"
    )
    e = ex("FILTER NOT INCLUDE buyers", p, includes=inc)
    assert e.next_change is not None
    assert e.next_change.sentence == (
        "enters 2026-04-06T09:12:00Z when INCLUDE buyers stops matching: the purchase of "
        "2026-03-07T09:12:00Z leaves the 30-day window"
    )
    assert e.next_change.path == [0, 0] and e.next_change.enters


def test_a_recheck_says_so() -> None:
    e = ex("FILTER AND (mm() <= 4, NOT (mm() <= 4))", user())
    assert e.next_change is not None and e.next_change.recheck
    assert e.next_change.sentence.startswith(f"no change before {rfc(e.next_change.at)}")


def test_static_filters_never_change() -> None:
    e = ex('FILTER plan == "pro"', user(plan="pro"))
    assert e.next_change is None and not e.time_dependent
    assert e.root.changes_at is None


def test_clause_changes_at_is_each_clause_own() -> None:
    e = ex(
        'FILTER OR (last_seen > "now-1d", timewindow(purchase, 1, 7))',
        user(last_seen="2026-03-10T00:00:00Z"),
    )
    assert [c.changes_at for c in e.root.children] == [
        at("2026-03-11T00:00:00Z"),
        at("2026-03-14T09:12:00Z"),
    ]
    assert e.next_change is not None and e.next_change.at == at("2026-03-14T09:12:00Z")


# -- JSON and text forms ----------------------------------------------------------------------------


def test_json_form() -> None:
    e = ex('FILTER AND (last_seen > "now-7d", timewindow(purchase, 1, 7))', user(last_seen=5))
    d = json.loads(json.dumps(e.as_dict()))
    assert set(d) == {"filter", "now", "now_ns", "matches", "time_dependent", "tree", "next_change"}
    assert d["now"] == "2026-03-10T12:00:00Z" and d["matches"] is False
    tree = d["tree"]
    assert set(tree) == {
        "kind",
        "text",
        "line",
        "column",
        "value",
        "decides",
        "decided_by",
        "reads",
        "window",
        "include",
        "changes_at",
        "changes_at_ns",
        "children",
    }
    # a number is no date to qlbridge: the first part is unknown, and so is the AND
    assert tree["value"] == "unknown" and tree["decided_by"] == [0]
    left, right = tree["children"]
    assert left["reads"][0] == {"text": "last_seen", "value": 5, "shown": "5"}
    assert right["window"]["times"] == ["2026-03-07T09:12:00Z"] and right["window"]["count"] == 1
    assert d["next_change"] is None
    assert render(d) == e.render_text()


def test_json_next_change() -> None:
    d = ex("FILTER timewindow(purchase, 1, 7)", user()).as_dict()
    assert d["next_change"] == {
        "at": "2026-03-14T09:12:00Z",
        "at_ns": at("2026-03-14T09:12:00Z"),
        "enters": False,
        "recheck": False,
        "path": [],
        "clause": "timewindow(purchase, 1, 7)",
        "sentence": "exits 2026-03-14T09:12:00Z when the purchase of 2026-03-07T09:12:00Z "
        "leaves the 7-day window",
    }


def test_long_clauses_are_cut_in_the_text_form_only() -> None:
    long = " ".join(f"f{i} == {i}" for i in range(30))
    e = ex(f"FILTER OR ({long})", user(f3=3))
    first = e.render_text().splitlines()[0]
    assert "…" in first and len(first.split("  ")[0]) <= 64
    assert e.as_dict()["tree"]["text"] == f"OR ({long})"


# -- audience eval --explain ------------------------------------------------------------------------


def _profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(
        json.dumps(
            {"score": 42, "_events": {"purchase": ["2026-03-07T09:12:00Z", "2026-03-09T00:00:00Z"]}}
        )
    )
    return path


def test_eval_explain_prints_the_tree(tmp_path: Path) -> None:
    from audiencehub.cli.explain import explain_eval_command

    args = [
        "--filter",
        "FILTER AND (score >= 20, timewindow(purchase, 2, 7))",
        "--profile",
        str(_profile_file(tmp_path)),
        "--now",
        "2026-03-10T12:00:00Z",
    ]
    result = CliRunner().invoke(explain_eval_command, [*args, "--explain"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "true",
        "AND (score >= 20, timewindow(purchase, 2, 7))  true     <- all hold",
        "├─ score >= 20                                 true     score = 42",
        "└─ timewindow(purchase, 2, 7)                  true     "
        "2 in window: 2026-03-07T09:12:00Z, 2026-03-09T00:00:00Z (needs 2)",
        "next change: exits 2026-03-14T09:12:00Z when the purchase of 2026-03-07T09:12:00Z "
        "leaves the 7-day window (1 left in it, 2 needed)",
    ]
    result = CliRunner().invoke(explain_eval_command, [*args, "--explain", "--json"])
    d = json.loads(result.stdout)
    assert d["matches"] is True and d["next_change"] == "2026-03-14T09:12:00Z"
    assert d["explanation"]["tree"]["children"][0]["reads"][0]["value"] == 42
    plain = CliRunner().invoke(explain_eval_command, args)
    assert plain.stdout.splitlines() == ["true", "next change: 2026-03-14T09:12:00Z"]


def test_hour_constant() -> None:
    assert HOUR * 24 == DAY and S * 3600 == HOUR
