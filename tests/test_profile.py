from __future__ import annotations

from workers.pipeline.profile import MAX_OCCURRENCES, Profile


def test_latest_event_time_wins_per_field_and_late_events_do_not_overwrite() -> None:
    p = Profile("u")
    assert p.merge({"plan": "pro", "email": "a@x"}, ts=200) == {"plan", "email"}
    assert p.merge({"plan": "free"}, ts=100) == set()
    assert p.fields["plan"] == "pro"
    assert p.merge({"plan": "team"}, ts=300) == {"plan"}
    assert (p.created, p.modified) == (100, 300)


def test_null_removes_a_field_and_unchanged_values_are_not_changes() -> None:
    p = Profile("u")
    p.merge({"a": 1, "b": 2}, ts=1)
    assert p.merge({"a": 1, "b": None}, ts=2) == {"b"}
    assert p.fields == {"a": 1}


def test_occurrences_stay_sorted_and_bounded() -> None:
    p = Profile("u")
    for ts in [5, 3, 9, 1]:
        p.record_occurrence("buy", ts)
    assert p.occurrences["buy"] == [1, 3, 5, 9]
    for ts in range(10, 10 + MAX_OCCURRENCES):
        p.record_occurrence("buy", ts)
    assert len(p.occurrences["buy"]) == MAX_OCCURRENCES
    assert p.occurrences["buy"][-1] == 9 + MAX_OCCURRENCES


def test_blob_round_trip() -> None:
    p = Profile("u")
    p.merge({"email": "a@x", "scores": {"m": 3}}, ts=10)
    p.record_occurrence("visit", 10)
    p.membership["aud"] = 10
    p.next_change["aud"] = 99
    q = Profile.loads("u", p.dumps())
    assert q == p
    assert q.due() == 99
