"""Work per evaluation is bounded, whatever the input: LIKE, todate layouts, email parsing,
replace() and INCLUDE fan-out (issue 13). Bounds are counted in steps, never timed; the speed of
the same adversarial inputs is measured in bench/patterns.py.

LIKE and todate answers are checked against golden data from the real qlbridge
(tests/filterql/golden/from_oracle.py wrote them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from workers.filterql import Filter, FilterQLError, compile_filter, compile_set, parse_statements
from workers.filterql import functions as fn
from workers.filterql.explain import explain
from workers.filterql.glob import MAX_WILDCARDS, Glob, compile_like
from workers.filterql.layouts import elements, parse_layout
from workers.filterql.walker import Walker
from workers.pipeline.profile import Profile
from workers.timefmt import NS_PER_DAY, parse_rfc3339

GOLDEN = Path(__file__).parent / "golden"
KIB64 = 64 * 1024
NOW = parse_rfc3339("2026-03-10T12:00:00Z")


def rows(name: str) -> list[dict[str, Any]]:
    with (GOLDEN / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def python_lines(call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call`` and count the Python lines it executes: a step count for pure-Python code."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    previous = sys.gettrace()  # coverage's tracer, under make coverage: put back, not dropped
    sys.settrace(tracer)
    try:
        result = call()
    finally:
        sys.settrace(previous)
    return result, count


# -- LIKE -------------------------------------------------------------------------------------------


def observed(positive: Filter, negative: Filter, fields: dict[str, Any]) -> bool | None:
    """True when ``x LIKE p`` matches, False when ``NOT (x LIKE p)`` does, None for neither."""
    p = Profile("u", fields=fields)
    if positive.matches(p, NOW):
        return True
    return False if negative.matches(p, NOW) else None


def test_like_answers_as_qlbridge_does() -> None:
    cases = rows("like.jsonl")
    assert len(cases) > 1000
    yes, no = compile_filter("FILTER host LIKE pat"), compile_filter("FILTER NOT (host LIKE pat)")
    for case in cases:
        pattern, value, want = case["pattern"], case["value"], case["like"]
        assert Glob(pattern.replace("%", "*")).match(value) is want, (pattern, value)
        assert observed(yes, no, {"host": value, "pat": pattern}) is want, (pattern, value)


def test_like_literal_patterns_compile_to_the_same_answers() -> None:
    for case in rows("like.jsonl")[:400]:
        pattern = case["pattern"]
        if "\\" in pattern or '"' in pattern:
            continue  # string-literal escaping is the parser's business, not the glob's
        yes = compile_filter(f'FILTER host LIKE "{pattern}"')
        no = compile_filter(f'FILTER NOT (host LIKE "{pattern}")')
        assert observed(yes, no, {"host": case["value"]}) is case["like"], (pattern, case["value"])


def test_like_unknown_when_the_pattern_is_malformed_where_matching_reaches_it() -> None:
    # qlbridge: "not ok", so NOT LIKE is not true either; a list element just does not match.
    f = compile_filter('FILTER host NOT LIKE "a["')
    assert not f.matches(Profile("u", fields={"host": "ab"}), NOW)
    assert f.matches(Profile("u", fields={"host": "a"}), NOW)
    in_list = compile_filter('FILTER NOT (tags LIKE "a[")')  # an element that errs: no match
    assert in_list.matches(Profile("u", fields={"tags": ["ab", "x"]}), NOW)


ADVERSARIAL = [
    ("*.*.*.com", "." * KIB64),  # the case: 4,000 dots kept a drain busy 75 s
    ("**.**.**.com", "." * KIB64),
    ("**a*b", "a" * KIB64),
    ("*?*?*?x", "a" * KIB64),
    ("**[a-z]*[a-z]**[^b]*b", "a/" * (KIB64 // 2)),
    ("**/*/**/*/x", "/" * KIB64),
    ("*a" * (MAX_WILDCARDS - 1) + "*b", "a" * KIB64),
    ("**a" * (MAX_WILDCARDS - 1) + "**b", "a" * KIB64),
]


@pytest.mark.parametrize(("pattern", "value"), ADVERSARIAL)
def test_like_work_is_linear_in_the_value(pattern: str, value: str) -> None:
    glob = Glob(pattern)
    answer, steps = glob.run(value)
    assert answer is False
    assert steps <= 2 * (len(pattern) + 2) * (len(value) + 1)
    _, small = glob.run(value[: len(value) // 16])
    assert steps <= 20 * max(small, 1)  # 16x the value: about 16x the work, not 16^k
    f = compile_filter(f'FILTER host LIKE "{pattern}"')
    assert f.matches(Profile("u", fields={"host": value}), NOW) is False


def test_like_patterns_over_the_limits_are_refused_with_the_reason() -> None:
    with pytest.raises(FilterQLError, match=r"runs of '\*'; the limit is 16"):
        compile_filter('FILTER host LIKE "' + "*a" * (MAX_WILDCARDS + 1) + '"')
    with pytest.raises(FilterQLError, match="characters; the limit is 1,000"):
        compile_filter('FILTER host LIKE "' + "a" * 1001 + '"')
    # A pattern held in a field cannot be refused at compile time: it is unknown instead.
    p = Profile("u", fields={"host": "a", "pat": "*a" * (MAX_WILDCARDS + 1)})
    yes, no = compile_filter("FILTER host LIKE pat"), compile_filter("FILTER NOT (host LIKE pat)")
    assert observed(yes, no, p.fields) is None
    assert compile_like("%.com") is compile_like("%.com")


# -- todate(layout, value) --------------------------------------------------------------------------


def test_todate_layouts_parse_as_go_does() -> None:
    cases = rows("todate.jsonl")
    assert len(cases) > 1000
    for case in cases:
        assert parse_layout(case["layout"], case["value"]) == case["ns"], case


def test_todate_layout_of_repeated_weekdays_is_linear() -> None:
    # The case: a layout of repeated "Monday" made the regex we built never return.
    layout = "Monday" * (KIB64 // 6)
    value = "Monday" * (KIB64 // 6 - 1) + "Mondax"
    elements.cache_clear()
    got, steps = python_lines(lambda: parse_layout(layout, value))
    assert got is None
    assert steps <= 100 * (len(layout) // 6 + 1)  # a few dozen lines per element, each once
    elements.cache_clear()
    _, small = python_lines(lambda: parse_layout(layout[: len(layout) // 16], value))
    assert steps <= 20 * small
    f = compile_filter("FILTER EXISTS todate(lay, val)")
    assert not f.matches(Profile("u", fields={"lay": layout, "val": value}), NOW)
    ok = "Monday" * (KIB64 // 6)
    assert f.matches(Profile("u", fields={"lay": layout, "val": ok}), NOW)


# -- other functions that read user text -------------------------------------------------------------


def test_email_of_64_kib_of_spaces_is_one_pass() -> None:
    # The display-name regex took minutes on a few thousand spaces (cubic backtracking).
    for value in (" " * KIB64 + "x", " " * KIB64 + "<a@b.c>" + " " * KIB64 + "x"):
        got, steps = python_lines(lambda v=value: fn._email(v))  # type: ignore[misc]
        assert got is None
        assert steps < 100
    assert fn._email('"Ada L" <ADA@Example.com>') == "ada@example.com"
    assert fn._emailname('"Ada L" <ada@example.com>') == "Ada L"


def test_replace_cannot_build_gigabytes() -> None:
    big = "a" * KIB64
    assert fn._replace(big, "", big) is None  # 4 G characters
    assert fn._replace(big, "a", "bb") == "bb" * KIB64
    assert fn._replace("abc", "", "-") == "-a-b-c-"


# -- INCLUDE fan-out ----------------------------------------------------------------------------------


class CountingFields(dict[str, Any]):
    """Profile fields that count how often an evaluation reads them."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        CountingFields.reads += 1
        return super().get(key, default)


def fan_out(levels: int, leaf: str) -> dict[str, str]:
    texts = {f"a{i}": f"FILTER AND (INCLUDE a{i + 1}, INCLUDE a{i + 1})" for i in range(levels)}
    texts[f"a{levels}"] = f"FILTER {leaf}"
    return texts


def test_an_included_audience_is_evaluated_once_however_often_it_is_named() -> None:
    levels = 40  # 2^40 evaluations of the leaf without memoising
    compiled = compile_set(fan_out(levels, 'last_seen > "now-1d"'))
    top = compiled["a0"]
    seen = NOW - NS_PER_DAY // 2
    fields = CountingFields(last_seen=seen)
    p = Profile("u", fields=fields)
    CountingFields.reads = 0
    assert top.matches(p, NOW) is True
    assert CountingFields.reads <= 2
    leaf = compile_filter('FILTER last_seen > "now-1d"').next_change(p, NOW)
    assert leaf == seen + NS_PER_DAY
    CountingFields.reads = 0
    assert top.next_change(p, NOW) == leaf  # exact, as the leaf's own
    assert CountingFields.reads <= 20
    CountingFields.reads = 0
    shown = explain(top, p, NOW)
    assert shown.matches is True
    assert CountingFields.reads <= 200


def test_memoised_includes_answer_as_the_reference_walker() -> None:
    texts = fan_out(8, 'OR (last_seen > "now-1d", plan == "pro")')
    texts["mixed"] = "FILTER AND (INCLUDE a3, NOT INCLUDE a5, OR (INCLUDE a0, INCLUDE a8))"
    compiled = compile_set(texts)
    statements = {slug: parse_statements(text)[0] for slug, text in texts.items()}
    walker = Walker(statements)
    for fields in (
        {"last_seen": NOW - NS_PER_DAY // 2},
        {"last_seen": NOW - 2 * NS_PER_DAY},
        {"plan": "pro"},
        {},
    ):
        p = Profile("u", fields=dict(fields))
        for slug, f in compiled.items():
            for at in (NOW, NOW + NS_PER_DAY):
                assert f.matches(p, at) == walker.matches(statements[slug], p, at), slug
