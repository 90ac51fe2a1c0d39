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


def test_the_second_text_is_strftimes_across_datetimes_range() -> None:
    """The table-built whole-second text is what strftime writes, years below 1000 and the
    range's ends included (and out of range fails as strftime does)."""
    import random
    from datetime import UTC, datetime

    from workers.timefmt import _second_text

    def strftime(s: int) -> str:
        return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")

    lo, hi = -62_135_596_800, 253_402_300_799
    rng = random.Random(5)
    picks = [lo, lo + 1, hi - 1, hi, -86_401, -86_400, -1, 0, 86_399, 951_782_400, 951_868_799]
    picks += [rng.randrange(lo, hi + 1) for _ in range(20_000)]
    picks += [rng.randrange(0, 4_000_000_000) for _ in range(20_000)]
    for s in picks:
        assert _second_text.__wrapped__(s) == strftime(s), s
    for s in (lo - 1, hi + 1):
        with pytest.raises((ValueError, OverflowError, OSError)):
            _second_text.__wrapped__(s)


def test_the_fraction_is_every_nanosecond_digit_with_trailing_zeros_trimmed() -> None:
    """Nine digits, zero-padded in front, zeros trimmed behind, none at all for a whole second:
    the same text as ``f"{frac:09d}".rstrip("0")``, around every power of ten."""
    import random

    rng = random.Random(9)
    fracs = [1, 9, 10, 100_000_000, 999_999_999, 500_000_000, 120_000_000, 1_000]
    fracs += [10**k + d for k in range(9) for d in (-1, 0, 1) if 0 < 10**k + d < 10**9]
    fracs += [rng.randrange(1, 10**9) for _ in range(20_000)]
    fracs += [rng.randrange(1, 10**4) * 10 ** rng.randrange(0, 6) for _ in range(20_000)]
    base = 1_467_226_216 * 10**9
    for frac in fracs:
        digits = f"{frac:09d}".rstrip("0")
        assert format_rfc3339(base + frac) == f"2016-06-29T18:50:16.{digits}Z", frac
        assert far_future(base + frac) == f"2099-06-29T18:50:16.{digits}Z", frac
    assert format_rfc3339(base) == "2016-06-29T18:50:16Z"
