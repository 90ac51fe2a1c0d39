from __future__ import annotations

import pytest

from workers.timefmt import far_future, format_rfc3339, ns_to_ms_ceil, parse_rfc3339


def test_seed_timestamp_round_trips_with_nanoseconds() -> None:
    text = "2016-06-29T18:50:16.902758229Z"
    assert format_rfc3339(parse_rfc3339(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-03-18T06:12:36Z", "2017-03-18T06:12:36Z"),
        ("2017-03-18T06:12:36.5Z", "2017-03-18T06:12:36.5Z"),
        ("2017-03-18T08:12:36+02:00", "2017-03-18T06:12:36Z"),
        ("2017-03-18T01:12:36-0500", "2017-03-18T06:12:36Z"),
        ("2017-03-18 06:12:36", "2017-03-18T06:12:36Z"),
    ],
)
def test_offsets_and_fractions_normalise_to_utc_z(text: str, expected: str) -> None:
    assert format_rfc3339(parse_rfc3339(text)) == expected


@pytest.mark.parametrize("text", ["yesterday", "2017-13-01T00:00:00Z", "1490000000", ""])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_far_future_moves_the_trigger_time_to_2099_as_the_seed_shows() -> None:
    assert far_future(parse_rfc3339("2017-03-18T06:12:36.829070108Z")) == (
        "2099-03-18T06:12:36.829070108Z"
    )
    assert far_future(parse_rfc3339("2024-02-29T00:00:00Z")) == "2099-02-28T00:00:00Z"


def test_due_times_round_up_to_the_millisecond() -> None:
    assert ns_to_ms_ceil(1_000_000) == 1
    assert ns_to_ms_ceil(1_000_001) == 2
