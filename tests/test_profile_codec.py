"""The stored profile: version 2 reads back exactly, versions 1 and 0 (JSON) are still read, and
a store holding all three drains to the same answers as a store of one (tests/test_drain.py)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.profile_v1 import encode_v1
from workers.audiences.numbers import NO_CODES, AudienceCodes, AudienceNumbering
from workers.engine import Engine
from workers.filterql import Filter, compile_filter
from workers.pipeline.profile import Profile
from workers.pipeline.profile_codec import decode_members, legacy_encode
from workers.timefmt import NS_PER_DAY, NS_PER_MS

CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)
T0 = 1_790_000_000 * 10**9
A, B = "a" * 32, "b" * 32
NUMBERS = {A: 1, B: 2}
CODES = AudienceCodes(NUMBERS)
WIDE = AudienceCodes({A: 300, B: 2})
"""A registry past 255 audiences: numbers stored in two bytes."""

times = st.integers(min_value=0, max_value=2**62)
ms_times = st.integers(min_value=0, max_value=2**40).map(lambda ms: ms * NS_PER_MS)
hostile_text = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "\x00", "é", "e\u0301", "\U0001f600", "\u202e", "\ufeff", "{"]),
    st.builds(lambda c, n: c * n, st.sampled_from("a\U0001f600é"), st.integers(60_000, 70_000)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | hostile_text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


field_names = st.one_of(st.text(max_size=6), st.sampled_from(["user_id", "visits", ""]))


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    p = Profile("u")
    for name, value in draw(st.dictionaries(field_names, json_values, max_size=6)).items():
        if name == "user_id" and draw(st.booleans()):
            value = "u"  # as the ingest sets it: the user's own id
        p.merge({name: value}, draw(st.one_of(ms_times, times)))
    for name in draw(st.lists(st.text(max_size=5), max_size=3)):
        for ts in draw(st.lists(st.one_of(ms_times, times), min_size=1, max_size=5)):
            p.record_occurrence(name, ts)
    for table in (p.membership, p.next_change, p.recorded):
        table.update(draw(st.dictionaries(st.sampled_from([A, B, "c" * 32, "#7"]), times)))
    return p


@settings(max_examples=300, deadline=None)
@given(profiles())
def test_every_profile_reads_back_exactly(p: Profile) -> None:
    for codes in (CODES, WIDE, NO_CODES):
        assert Profile.loads("u", p.dumps(codes), codes) == p
    assert Profile.loads("u", legacy_encode(p), CODES) == p
    assert Profile.loads("u", encode_v1(p, NUMBERS), CODES) == p


@settings(max_examples=300, deadline=None)
@given(profiles())
def test_what_a_backfill_page_reads_of_a_profile_is_what_it_holds(p: Profile) -> None:
    """decode_members reads only what a message needs, the same as a whole read, any version."""
    blobs = [(p.dumps(codes), codes) for codes in (CODES, WIDE, NO_CODES)]
    blobs += [(legacy_encode(p), CODES), (encode_v1(p, NUMBERS), CODES)]
    for blob, codes in blobs:
        view = decode_members(Profile, "u", blob, codes)
        whole = Profile.loads("u", blob, codes)
        got = (view.user_id, view.created, view.modified, view.fields)
        assert got == (whole.user_id, whole.created, whole.modified, whole.fields)
        assert (view.membership, view.recorded) == (whole.membership, whole.recorded)
        assert list(view.membership) == list(whole.membership)


@settings(max_examples=300, deadline=None)
@given(profiles(), st.sampled_from(["v0", "v1", "v2"]))
def test_a_profile_read_in_any_version_writes_back_as_version_2_exactly(
    p: Profile, version: str
) -> None:
    blob = {"v0": legacy_encode(p), "v1": encode_v1(p, NUMBERS), "v2": p.dumps(CODES)}[version]
    again = Profile.loads("u", blob, CODES).dumps(CODES)
    assert again[:1] != b"{" or p.fields.get("user_id", 0) is None  # JSON only for a nil id
    assert Profile.loads("u", again, CODES) == p


@settings(max_examples=300, deadline=None)
@given(
    profiles(),
    st.lists(st.tuples(st.sampled_from(["a", "b", ""]), st.one_of(ms_times, times)), max_size=4),
    st.integers(1, 6),
)
def test_a_profile_changed_after_reading_writes_back_exactly(
    p: Profile, more: list[tuple[str, int]], keep: int
) -> None:
    """A read profile adds occurrences to its stored lists without converting them (or converts
    the one list it must), answers a timewindow from them, and merges into its field times as
    stored; writing back reuses the stored form of what did not change: what reads back is
    exactly the same changes made to the profile never stored, in every version it may have
    been read from."""
    for blob in (p.dumps(CODES), encode_v1(p, NUMBERS), legacy_encode(p)):
        q = Profile.loads("u", blob, CODES)
        expected = Profile.loads("u", legacy_encode(p), CODES)
        for name, ts in more:
            for r in (q, expected):
                r.record_occurrence(name, ts, keep)
                r.merge({name: ts, "gone": None}, ts)
        for name in {name for name, _ in more} | {"never", *p.occurrences}:
            times = expected.times(name)
            for n in (1, 2, 5):
                got = q.stored.nth_last(name, n) if q.stored is not None else None
                if times is None:
                    assert got is None
                elif got is not None:
                    assert got == (len(times), times[-n] if len(times) >= n else 0)
        again = Profile.loads("u", q.dumps(CODES), CODES)
        assert again == q == expected
        # and once more, from what the first write-back stored
        for name, ts in more:
            again.record_occurrence(name, ts + NS_PER_MS, keep)
            expected.record_occurrence(name, ts + NS_PER_MS, keep)
        assert Profile.loads("u", again.dumps(CODES), CODES) == expected


WINDOWS = [
    compile_filter(f"FILTER timewindow(a, {need}, {days}) OR timewindow(b, 1, {days})")
    for need in (1, 2, 4)
    for days in (0.5, 30, 3000)
]


@settings(max_examples=200, deadline=None)
@given(
    profiles(),
    st.lists(st.tuples(st.sampled_from(["a", "b"]), st.one_of(ms_times, times)), max_size=6),
    st.sampled_from(WINDOWS),
    st.one_of(ms_times, times),
)
def test_a_timewindow_answers_the_same_on_a_read_profile(
    p: Profile, more: list[tuple[str, int]], f: Filter, now: int
) -> None:
    """The compiled timewindow reads a read profile's stored lists without converting them:
    its answer and its next change are those of the same profile never stored."""
    q = Profile.loads("u", p.dumps(CODES), CODES)
    for name, ts in more:
        p.record_occurrence(name, ts, 5)
        q.record_occurrence(name, ts, 5)
    assert f.matches(q, now) == f.matches(p, now)
    assert f.next_change(q, now) == f.next_change(p, now)
    assert q == p


@settings(max_examples=100, deadline=None)
@given(profiles())
def test_a_read_profile_converts_its_times_only_when_used(p: Profile) -> None:
    """Unused, a read profile writes back its bytes as they were; fields changed behind the
    field times' back still pair each time with its field."""
    blob = p.dumps(CODES)
    assert Profile.loads("u", blob, CODES).dumps(CODES) == blob
    q = Profile.loads("u", blob, CODES)
    if q.fields:
        q.fields.pop(next(iter(q.fields)))
    q.fields["added"] = 1
    expected = Profile.loads("u", blob, CODES)
    expected.fields = q.fields
    assert Profile.loads("u", q.dumps(CODES), CODES) == expected


def test_a_user_id_field_other_than_the_users_id_is_kept() -> None:
    for value in ("someone-else", 7, None, ["u"]):
        p = Profile("u", fields={"user_id": value, "x": 1}, field_ts={"user_id": T0, "x": T0})
        p.created = p.modified = T0
        blob = p.dumps(CODES)
        assert (blob[:1] == b"{") == (value is None), "a nil user_id is kept by JSON"
        assert Profile.loads("u", blob, CODES) == p
    p = Profile("u", fields={"user_id": "u"}, field_ts={"user_id": T0}, created=T0, modified=T0)
    assert b"user_id" in p.dumps(CODES) and b"u" not in p.dumps(CODES).split(b"user_id")[1][:2]
    assert Profile.loads("u", p.dumps(CODES), CODES).fields == {"user_id": "u"}


def test_audience_numbers_take_a_byte_below_256_and_two_above() -> None:
    p = Profile("u", created=T0, modified=T0)
    p.membership = {A: T0, B: T0 + 1}
    p.next_change = {A: T0 + 2}
    narrow, wide = p.dumps(CODES), p.dumps(WIDE)
    assert b"\xc4\x03\x00\x01\x02" in narrow and b"\xc4\x01\x01" in narrow  # 0 pads an even count
    assert b"\xc4\x04\x2c\x01\x02\x00" in wide and b"\xc4\x02\x2c\x01" in wide
    assert Profile.loads("u", narrow, CODES) == Profile.loads("u", wide, WIDE) == p
    assert Profile.loads("u", narrow, AudienceCodes()).membership == {"#1": T0, "#2": T0 + 1}


def test_a_realistic_profile_is_a_quarter_of_its_json() -> None:
    p = Profile("u")
    p.merge({"user_id": "user00000001", "email": "user00000001@example.com", "plan": "pro"}, T0)
    for i in range(20):
        p.record_occurrence(("view", "cart", "buy")[i % 3], T0 + i * 3_600_123 * NS_PER_MS)
    p.merge({"visits": 20}, p.occurrences["view"][-1])
    p.membership = {A: T0 + 123_456_789, B: T0 + 987_654_321}
    p.next_change = {A: T0 + 7 * NS_PER_DAY}
    new, old = p.dumps(CODES), legacy_encode(p)
    assert new[0] != ord("{") and old[0] == ord("{")
    assert len(new) * 3 < len(old)
    assert Profile.loads("u", new, CODES) == Profile.loads("u", old, CODES) == p


def test_a_finer_than_millisecond_occurrence_keeps_its_nanoseconds() -> None:
    p = Profile("u")
    p.record_occurrence("view", T0)
    p.record_occurrence("view", T0 + 1)
    p.record_occurrence("buy", T0 + NS_PER_MS)
    assert Profile.loads("u", p.dumps(CODES), CODES).occurrences == {
        "view": [T0, T0 + 1],
        "buy": [T0 + NS_PER_MS],
    }


def test_a_deeply_nested_field_the_ingest_accepts_is_stored() -> None:
    value: object = 1
    for _ in range(253):
        value = [value]
    orjson.dumps({"deep": value})  # the ingest's check
    p = Profile("u")
    p.merge({"deep": value}, T0)
    assert Profile.loads("u", p.dumps(CODES), CODES) == p


def test_audience_numbers_are_given_once_and_never_reused(engine: Engine) -> None:
    numbering = AudienceNumbering(engine.r, engine.keys)
    first = numbering.ensure([A, B])
    assert sorted(first.numbers.values()) == [1, 2]
    again = numbering.ensure([B, "c" * 32])  # A deleted, C created: A keeps its number
    assert again.numbers[A] == first.numbers[A] and again.numbers[B] == first.numbers[B]
    assert again.numbers["c" * 32] == 3
    assert again.ids[first.numbers[A]] == A
