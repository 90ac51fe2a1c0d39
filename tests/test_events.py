from __future__ import annotations

import orjson
import pytest

from workers.pipeline.entries import SCORE, Entry
from workers.pipeline.events import MAX_EVENT_BYTES, Invalid, validate, validate_many
from workers.pipeline.ingest import ndjson_items
from workers.timefmt import parse_rfc3339

NOW = parse_rfc3339("2026-11-27T10:00:00Z")


def test_a_full_event_is_normalised() -> None:
    ev = validate(
        {"user_id": 7, "event": "purchase", "_ts": "2026-11-26T00:00:00Z", "amount": 3}, NOW
    )
    assert ev.user_id == "7"
    assert ev.name == "purchase"
    assert ev.ts == parse_rfc3339("2026-11-26T00:00:00Z")
    assert ev.fields == {"user_id": "7", "amount": 3}


def test_epoch_ms_and_default_now() -> None:
    assert validate({"user_id": "u", "_ts": 1_700_000_000_000}, NOW).ts == 1_700_000_000_000_000_000
    assert validate({"user_id": "u"}, NOW).ts == NOW


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ({"email": "x"}, "user_id", "missing"),
        ({"user_id": ""}, "user_id", "blank"),
        ({"user_id": ["a"]}, "user_id", "list"),
        ({"user_id": True}, "user_id", "bool"),
        ({"user_id": "u", "_ts": True}, "_ts", "boolean"),
        ({"user_id": "u", "_ts": {"a": 1}}, "_ts", "dict"),
        ({"user_id": "u", "_ts": "last tuesday"}, "_ts", "RFC 3339"),
        ({"user_id": "u", "_ts": 1_700_000_000_000_000}, "_ts", "1970..2100"),
        ({"user_id": "u", "event": 5}, "event", "non-empty string"),
        ([1, 2], None, "JSON object"),
    ],
)
def test_each_bad_event_names_field_and_reason(raw: object, field: str | None, reason: str) -> None:
    with pytest.raises(Invalid) as info:
        validate(raw, NOW)
    assert info.value.field == field
    assert reason in info.value.reason


def test_oversized_event_is_refused_with_its_size() -> None:
    raw = {"user_id": "u", "blob": "x" * MAX_EVENT_BYTES}
    with pytest.raises(Invalid, match="limit is 65,536"):
        validate(raw, NOW)


def test_ndjson_lines_report_line_numbers_and_skip_blank_lines() -> None:
    lines = [b'{"user_id": "a"}\n', b"\n", b"{not json\n", b"x" * (MAX_EVENT_BYTES + 1)]
    items = list(ndjson_items(lines))
    assert [where for where, _, _ in items] == ["line 1", "line 3", "line 4"]
    assert items[0][1] == orjson.loads(lines[0])
    assert isinstance(items[1][1], Invalid) and "not valid JSON" in items[1][1].reason
    assert isinstance(items[2][1], Invalid) and "bytes" in items[2][1].reason


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"user_id": "u", "_ts": -1.8e308}, "_ts"),
        ({"user_id": "u", "_ts": float("nan")}, "_ts"),
        ({"user_id": "u", "big": 2**70}, "big"),
    ],
)
def test_values_a_parser_accepts_but_we_cannot_store_are_refused(
    raw: dict[str, object], field: str | None
) -> None:
    with pytest.raises(Invalid) as info:
        validate(raw, NOW)
    assert info.value.field == field


def test_deep_nesting_is_refused_not_crashed() -> None:
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(Invalid, match="cannot be stored"):
        validate({"user_id": "u", "deep": deep}, NOW)


def test_validation_encodes_the_entry_it_stores() -> None:
    """A field may hold 252 levels: the stream entry and its fields object add the two more
    orjson can encode. One level more is refused naming the field, not crashed at the write."""
    nested: object = 1
    for _ in range(252):
        nested = [nested]
    ev = validate({"user_id": "u", "tree": nested, "event": "e"}, NOW, kind=SCORE)
    assert Entry.decode(ev.entry) == [
        Entry(SCORE, "u", NOW, None, {"tree": nested, "user_id": "u"})
    ]
    with pytest.raises(Invalid) as info:
        validate({"user_id": "u", "tree": [nested]}, NOW)
    assert info.value.field == "tree" and "nested deeper than 252 levels" in info.value.reason


def test_validating_many_at_once_says_what_validating_each_says() -> None:
    """``validate_many`` encodes a request's entries in one call and cuts them apart: each
    result is what ``validate`` gives that value alone, the entry's bytes and every refusal's
    field and words, whatever the values hold (the separator's byte, nesting that fits alone
    but not one level deeper, values orjson refuses, keys that look like the entry's)."""
    fits: object = 1
    for _ in range(252):
        fits = [fits]
    values: list[object] = [
        {"user_id": "a", "x": "\x00,\x00,", "k": [{"k": 1}, {"k": 2}], "event": "e"},
        {"user_id": 7, "_id": 3, "_ts": 1_700_000_000_000, "messageId": "m"},
        {"user_id": "u", "tree": fits, "event": "deep"},
        {"user_id": "u", "big": 2**70},
        {"user_id": " "},
        {"user_id": "u", "": 1},
        {"user_id": "u", "n" * 257: 1},
        {"user_id": "u", "blob": "x" * MAX_EVENT_BYTES},
        [1],
        {"user_id": "last", "event": None, "_ts": None},
    ]
    many = validate_many(values, NOW, max_ahead_s=900, max_fields=1000)
    for value, got in zip(values, many, strict=True):
        try:
            want: object = validate(value, NOW, max_ahead_s=900, max_fields=1000)
        except Invalid as exc:
            assert isinstance(got, Invalid)
            assert (got.field, got.reason) == (exc.field, exc.reason)
        else:
            assert got == want
    assert [isinstance(x, Invalid) for x in many] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0]


def test_a_fragment_holding_the_separator_does_not_shift_entries() -> None:
    """Only a Python caller can pass an orjson.Fragment; one holding validate_many's separator
    must not move one event's bytes into another's entry."""
    values = [{"user_id": "a", "x": orjson.Fragment(b'"y",\x00,"z"')}, {"user_id": "b"}]
    many = validate_many(values, NOW)
    assert [ev.entry for ev in many if not isinstance(ev, Invalid)] == [
        validate(v, NOW).entry for v in values
    ]
