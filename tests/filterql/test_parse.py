"""Parsing: qlbridge's rel/parse_filterql_test.go statements, statement clauses, and clear errors."""

from __future__ import annotations

import pytest

from workers.filterql import FilterQLError, compile_filter, parse_statements
from workers.filterql.syntax import Between, Binary, Compare, Include, Logic, MatchAll, Not
from workers.pipeline.profile import Profile

# rel/parse_filterql_test.go FilterTests: every one must parse.
QLBRIDGE_FILTER_TESTS = [
    'FILTER "bob@gmail.com" IN ("hello","world")',
    'FILTER "bob@gmail.com" IN ("hello\\n","world")',
    'FILTER "bob@gmail.com" NOT IN ("hello","world")',
    'FILTER "bob@gmail.com" IN identityname',
    'FILTER "\\"Boost\\"" == identityname',
    'FILTER email CONTAINS "gmail.com"',
    "FILTER NOT INCLUDE ffe5817811c2270aa5d4aff2d9eafed3",
    'FILTER AND ( NOT news INTERSECTS ("a"), domains intersects ("b"))',
    'FILTER email INTERSECTS ("a", "b")',
    'FILTER email NOT INTERSECTS ("a", "b")',
    "FILTER EXISTS email ALIAS `Has Spaces Alias`",
    'FILTER AND ( NOT INCLUDE abcd, (lastvisit_ts > "now-1M") ) FROM user',
    'FILTER COMPANY IN ("Toys R"" Us", "Toys R\' Us, Inc.")',
    "FILTER *",
    """
    FILTER AND (
        a IN ("Analyst")
        b IN ("C-Level Other")
        c IN ("Management")
    )
    FROM x
    ALIAS abc
    """,
    """
        FILTER score > 0
        WITH
            name = "My Little Pony",
            public = false,
            kind = "aspect"
        ALIAS with_attributes
    """,
    """
        FILTER OR (
            AND (
                score NOT BETWEEN 5 and 10,
                email NOT IN ("abc")
            ),
            NOT date > "now-3d"
        )""",
    """
        FILTER AND ( EXISTS user_id, NOT OR ( user_id like "a", user_id like "b", user_id like "c", user_id like "d", user_id like "e", user_id like "f" ) )
    """,
    """
        FILTER OR ( AND ( our_names like "2. has spaces", our_names like "1. has more spa'ces" ), INCLUDE 'f9f0dc74234af7e86ddeb660c50350e1' )
    """,
    """
        FILTER  AND ( NOT INCLUDE '791734b084019d99c82a475264464304',
            NOT INCLUDE 'd750a11e72b58778e302eb0893788680', NOT INCLUDE '61a624e5ca4153645ddc9e6ebaee8000' )
        """,
    'FILTER AND ( visitct >= "1", NOT INCLUDE 3d4240482815b9848caf2e6f )',
    """
        FILTER AND (
            AND (
                score NOT BETWEEN 5 and 10,
                email NOT IN ("abc")
            ),
            x > 7
        )""",
    'FILTER AND ( visitct >= "1", INCLUDE 3d4240482815b9848caf2e6f )',
    "FILTER x > 7",
    'FILTER AND ( NOT EXISTS email, email NOT IN ("abc") )',
    'FILTER AND ( score NOT BETWEEN 5 and 10, email NOT IN ("abc") )',
    """
        FILTER
            AND (
                NAME != NULL
                , tostring(fieldname) == "hello"
            )

            LIMIT 100
    """,
    """
      -- this function tests a LOT of comments
      FILTER
        -- and this expression
        AND (  -- and even here which makes no sense
          NAME != NULL   -- ensures name not nill
          , tostring(fieldname) == "hello"  -- also that fieldname == hello
        ) -- again
        -- and our limit is 100
        LIMIT 100
        -- and some more
    """,
]


@pytest.mark.parametrize("text", QLBRIDGE_FILTER_TESTS)
def test_qlbridge_filter_tests_parse(text: str) -> None:
    (statement,) = parse_statements(text)
    assert statement.text.upper().startswith("FILTER")


def test_qlbridge_keywords_and_description() -> None:
    """TestFilterQLKeywords."""
    (st,) = parse_statements(
        """
      -- Test comment 1
        FILTER
          -- Test comment 2
            AND (
                created < "now-24h",
                deleted == false
            )
        FROM accounts
        LIMIT 100
        ALIAS new_accounts
    """
    )
    assert st.description == "Test comment 1"
    assert (st.from_, st.limit, st.alias) == ("accounts", 100, "new_accounts")


def test_qlbridge_ast_shapes() -> None:
    """TestFilterQLAstCheck, in this parser's node types."""
    (st,) = parse_statements('FILTER AND (NAME != NULL, tostring(fieldname) == "hello",) LIMIT 100')
    assert isinstance(st.filter, Logic) and len(st.filter.args) == 2 and st.limit == 100
    (st,) = parse_statements("FILTER OR ( INCLUDE child_1, INCLUDE child_2 ) ALIAS root")
    assert isinstance(st.filter, Logic) and st.filter.op == "OR"
    assert [a.name for a in st.filter.args if isinstance(a, Include)] == ["child_1", "child_2"]
    (st,) = parse_statements("FILTER NOT INCLUDE child_1 ALIAS root")
    assert isinstance(st.filter, Not) and isinstance(st.filter.arg, Include)
    (st,) = parse_statements(
        """FILTER AND (
            daysago(datefield) < 100
            domain(url) == "google.com"
            INCLUDE my_other_named_filter
            OR ( momentum > 20
                 propensity > 50 )
            NOT AND ( score > 20 , score < 50 )
        ) ALIAS my_filter_name"""
    )
    assert isinstance(st.filter, Logic) and len(st.filter.args) == 5
    assert st.alias == "my_filter_name"
    (st,) = parse_statements("FILTER *")
    assert isinstance(st.filter, MatchAll)
    (st,) = parse_statements('FILTER AND ( NOT news INTERSECTS ("a"), domains intersects ("b"))')
    assert isinstance(st.filter, Logic)
    first = st.filter.args[0]
    assert isinstance(first, Not) and isinstance(first.arg, Binary) and first.arg.op == "INTERSECTS"


def test_infix_and_versus_groups() -> None:
    """At top level ``x AND (y)`` is infix; inside a group "AND (" always opens a nested group."""
    (st,) = parse_statements("FILTER a > 1 AND (b > 2)")
    assert isinstance(st.filter, Logic) and st.filter.infix and len(st.filter.args) == 2
    (st,) = parse_statements("FILTER OR ( a > 1 AND (b > 2) )")
    assert isinstance(st.filter, Logic) and st.filter.op == "OR" and len(st.filter.args) == 2
    (st,) = parse_statements("FILTER a AND b AND c OR d")
    assert isinstance(st.filter, Logic) and st.filter.op == "OR"
    assert isinstance(st.filter.args[0], Logic) and len(st.filter.args[0].args) == 3


def test_between_and_is_not_logical_and() -> None:
    (st,) = parse_statements("FILTER x BETWEEN 1 AND 5 AND y > 3")
    assert isinstance(st.filter, Logic) and isinstance(st.filter.args[0], Between)


def test_several_statements_and_their_text() -> None:
    sts = parse_statements('FILTER a == "x;y" ALIAS one;\n-- second\nFILTER b ALIAS two;')
    assert [s.alias for s in sts] == ["one", "two"]
    assert sts[0].text == 'FILTER a == "x;y" ALIAS one'
    assert sts[1].text == "FILTER b ALIAS two" and sts[1].description == "second"


def test_with_values_and_backquoted_alias() -> None:
    (st,) = parse_statements('FILTER * WITH a = 1, b = "x", c = true ALIAS `My Alias`')
    assert st.with_map == {"a": 1, "b": "x", "c": True}
    assert st.alias == "My Alias"


def test_names_that_are_keywords_elsewhere() -> None:
    (st,) = parse_statements("FILTER AND (limit > 5, from == 1, alias == 2)")
    assert isinstance(st.filter, Logic) and len(st.filter.args) == 3
    assert all(isinstance(a, Compare) for a in st.filter.args)


# -- errors ---------------------------------------------------------------------------------------
ERRORS = [
    # (text, line, column, something expected, words in the sentence)
    ("FILTER * FROM user ALIAS ALIAS stuff", 1, 32, "end of text", "unexpected 'stuff'"),
    (
        'FILTER OR (_uid == "bob", email IN ("steve@steve.com")))\n ALIAS x',
        1,
        56,
        "FROM",
        "unexpected ')'",
    ),
    ("FILTER name == ", 1, 16, 'a "string"', "unexpected end of text"),
    ('FILTER name == "Yoda', 1, 16, 'a "string"', "never closed"),
    ("", 1, 1, "FILTER", "empty"),
    ("hello", 1, 1, "FILTER", "unexpected 'hello'"),
    ("FILTER AND (\n  a > 1\n  b >\n)", 4, 1, "a number", "unexpected ')'"),
    ("FILTER x IN 5", 1, 13, "'('", "unexpected '5'"),
    ("FILTER x BETWEEN 1 5", 1, 20, "AND", "unexpected '5'"),
    ("FILTER x == 1 LIMIT 1.5", 1, 21, "a number", "whole number"),
    ("FILTER `unclosed", 1, 8, "a field name", "never closed"),
]


@pytest.mark.parametrize(("text", "line", "column", "expected", "words"), ERRORS)
def test_errors_say_where_and_what(
    text: str, line: int, column: int, expected: str, words: str
) -> None:
    with pytest.raises(FilterQLError) as info:
        parse_statements(text)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert expected in err.expected
    assert words in str(err)
    assert str(err).startswith(f"line {line}, column {column}: ")
    assert err.text == text
    assert "^" in err.caret()


COMPILE_ERRORS = [
    ("FILTER nope(x) == 1", "unknown function nope()", 1, 8),
    ("FILTER tolower(a, b)", "tolower() takes 1 argument(s), not 2", 1, 8),
    ('FILTER AND (\n x > "now-3x"\n)', "not valid date math", 2, 6),
    ("FILTER INCLUDE some_slug", "INCLUDE some_slug", 1, 8),
    ("FILTER timewindow(purchase, 0, 7)", "count of at least 1", 1, 29),
    ("FILTER timewindow(purchase, 1, -7)", "positive number of days", 1, 32),
    ("FILTER timewindow(5, 1, 7)", "event name", 1, 8),
    ('FILTER now() LIKE "2026*"', "LIKE cannot use a moving time", 1, 8),
    ("FILTER now() + 1 > 5", "arithmetic on a moving time", 1, 8),
    ("FILTER a; FILTER b", "expected one FILTER statement, found 2", 1, 11),
]


@pytest.mark.parametrize(("text", "words", "line", "column"), COMPILE_ERRORS)
def test_compile_errors(text: str, words: str, line: int, column: int) -> None:
    with pytest.raises(FilterQLError) as info:
        compile_filter(text)
    assert words in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="line 1, column 8"):
        compile_filter("FILTER )")


# -- a function call starts a phrase; OR ( / AND ( after a phrase, as qlbridge reads them ---------


def _members(text: str) -> list[str]:
    st = parse_statements(text)[0]
    node = st.filter
    assert isinstance(node, Logic)
    return [type(a).__name__ for a in node.args]


def test_a_function_call_may_start_any_phrase_in_a_group() -> None:
    """Issue 12: without a comma, ``contains(`` started a phrase qlbridge reads as a call, and this
    parser read it as the CONTAINS operator (a parse error). Touching its "(" it is the function."""
    assert _members('FILTER OR (plan == "gold"\n contains(name, "p"))') == ["Compare", "Call"]
    assert _members('FILTER OR (plan == "gold" contains(name, "p"))') == ["Compare", "Call"]
    assert _members('FILTER AND (x > 3 contains(plan, "p") == true)') == ["Compare", "Compare"]
    assert _members('FILTER AND (x > 3 NOT contains(plan, "p"))') == ["Compare", "Not"]
    assert _members('FILTER AND (x > 3 exists(plan) hasprefix(url, "h"))') == [
        "Compare",
        "Call",
        "Call",
    ]
    f = compile_filter('FILTER OR (plan == "gold"\n contains(name, "p"))')
    assert f.matches(Profile("u", fields={"name": "p"}), 0)
    op = parse_statements('FILTER name CONTAINS ("p")')[0].filter
    assert isinstance(op, Binary) and op.op == "CONTAINS"  # with a space it is the operator


def test_or_paren_after_a_phrase_on_the_same_line_is_infix() -> None:
    """qlbridge's tree.Or has no "boolean" check: ``x OR (y)`` on one line is infix even in a group;
    after a comma or a line break ``OR (`` opens a nested group."""
    infix = parse_statements("FILTER AND (a > 1 OR (b > 1))")[0].filter
    assert isinstance(infix, Logic) and infix.op == "AND" and len(infix.args) == 1
    assert isinstance(infix.args[0], Logic) and infix.args[0].infix and infix.args[0].op == "OR"
    assert _members("FILTER AND (a > 1\n OR (b > 1, c))") == ["Compare", "Logic"]
    assert _members("FILTER AND (a > 1, OR (b > 1, c))") == ["Compare", "Logic"]


def test_and_paren_in_a_group_follows_qlbridges_boolean_flag() -> None:
    """``AND (`` after a phrase opens a nested group until a nested group has closed in the
    enclosing one (qlbridge keeps one flag, cleared when any group closes), then it is infix."""
    assert _members("FILTER OR (a > 1 AND (b > 1, c))") == ["Compare", "Logic"]
    inner = parse_statements("FILTER OR (AND (a, b) AND (c) d)")[0].filter
    assert isinstance(inner, Logic) and isinstance(inner.args[0], Logic)
    assert inner.args[0].infix and len(inner.args) == 2
