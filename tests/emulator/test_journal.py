"""``--data DIR``: the stand-in's journal, in-process (the restart through real processes is in
tests/emulator/test_amqp_consumer.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from audiencehub.emulator.amqp import Symbol, Timestamp
from audiencehub.emulator.journal import Journal, JournalError
from audiencehub.emulator.records import IncomingEvent, PartitionInfo
from audiencehub.emulator.store import EventStore


@contextmanager
def opened(path: Path, partitions: int = 2, **store: object) -> Iterator[EventStore]:
    """A store on the journal in ``path``, loaded as the stand-in loads it at start."""
    journal = Journal(path, segment_bytes=4096)
    try:
        events = EventStore(journal=journal, **store)  # type: ignore[arg-type]
        events.create_hub("h", partitions)
        events.load()
        yield events
    finally:
        journal.close()


def _ev(body: str, key: str | None = None, **props: object) -> IncomingEvent:
    return IncomingEvent(body.encode(), dict(props), {"PartitionKey": key} if key else {}, key)


def _snapshot(store: EventStore) -> tuple[list[tuple[object, ...]], list[PartitionInfo], int]:
    events, _ = store.events("h", limit=10_000)
    rows: list[tuple[object, ...]] = [tuple(e) for e in events]
    return rows, [store.partition_info("h", p) for p in ("0", "1")], store.last_seq()


def test_everything_comes_back_with_its_numbers_and_types(tmp_path: Path) -> None:
    typed = {"u": uuid.UUID(int=3), "b": b"\x00\xff", "t": Timestamp(5), "s": Symbol("sym")}
    with opened(tmp_path) as store:
        store.append("h", [_ev("a", "k1", **typed), _ev("b")], "amqp")
        store.append("h", [_ev(f"c{i}") for i in range(50)], "rest", partition_id="1")
        before = _snapshot(store)
    with opened(tmp_path) as store:
        assert _snapshot(store) == before
        (first,), _ = store.events("h", limit=1)
        assert first.user_properties == typed
        assert type(first.user_properties["s"]) is Symbol
        store.append("h", [_ev("d")], "rest", partition_id="1")
        events, _ = store.events("h", partition_id="1", limit=1000)
        assert [e.sequence_number for e in events] == list(range(len(events)))  # numbering goes on
        assert store.last_seq() == before[2] + 1


def test_a_reset_is_kept_and_numbering_still_goes_on(tmp_path: Path) -> None:
    with opened(tmp_path) as store:
        store.append("h", [_ev(str(i)) for i in range(10)], "rest", partition_id="0")
        store.reset("h")
        store.append("h", [_ev("after")], "rest", partition_id="1")
    with opened(tmp_path) as store:
        events, _ = store.events("h")
        assert [(e.body, e.sequence_number) for e in events] == [(b"after", 0)]
        zero = store.partition_info("h", "0")
        assert (zero.begin_sequence_number, zero.last_enqueued_sequence_number) == (10, 9)
        assert zero.is_empty
    # Only the segment the reset opened is left.
    assert [p.name for p in (tmp_path / "hubs" / "h").glob("*.log")] == [f"{11:020d}.log"]


def test_a_torn_last_record_is_cut_off(tmp_path: Path) -> None:
    with opened(tmp_path) as store:
        store.append("h", [_ev("kept")], "rest")
        store.append("h", [_ev("torn")], "rest")
    (segment,) = sorted((tmp_path / "hubs" / "h").glob("*.log"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # the process died in the middle of the last write
    with opened(tmp_path) as store:
        assert [e.body for e in store.events("h")[0]] == [b"kept"]
        store.append("h", [_ev("next")], "rest")
    with opened(tmp_path) as store:
        assert [e.body for e in store.events("h")[0]] == [b"kept", b"next"]


def test_dropping_the_oldest_deletes_whole_segments(tmp_path: Path) -> None:
    with opened(tmp_path, max_events_per_hub=100, when_full="drop-oldest") as store:
        for i in range(100):
            store.append("h", [_ev(f"{i:03d}" + "x" * 200) for _ in range(5)], "rest")
        held = _snapshot(store)
    segments = list((tmp_path / "hubs" / "h").glob("*.log"))
    assert 1 < len(segments) < 60  # 4 KiB segments of ~2 KB appends: most are gone
    with opened(tmp_path, max_events_per_hub=100, when_full="drop-oldest") as store:
        rows, infos, _ = _snapshot(store)
        assert rows[-len(held[0]) :] == held[0][-len(rows) :]  # the newest, same numbers
        assert [i.last_enqueued_sequence_number for i in infos] == [
            i.last_enqueued_sequence_number for i in held[1]
        ]


def test_one_directory_one_stand_in_and_partitions_only_grow(tmp_path: Path) -> None:
    with opened(tmp_path) as store:
        store.append("h", [_ev("x")], "rest", partition_id="1")
        with pytest.raises(JournalError, match="in use by another hub stand-in"):
            Journal(tmp_path)
    with opened(tmp_path, partitions=3) as store:  # more partitions: the hub grows
        assert store.hub("h").partition_ids == ("0", "1", "2")
        store.append("h", [_ev("y")], "rest", partition_id="2")
    with opened(tmp_path, partitions=2) as store:  # fewer: it keeps what it had, events too
        assert store.hub("h").partition_ids == ("0", "1", "2")
        assert [e.body for e in store.events("h")[0]] == [b"x", b"y"]
    journal = Journal(tmp_path)
    try:
        store = EventStore(journal=journal)
        store.create_hub("h", ["a", "b"])  # ids that do not line up: refused
        with pytest.raises(ValueError, match="holds event hub 'h' with partitions 0, 1, 2"):
            store.load()
    finally:
        journal.close()


def test_a_hub_grown_at_run_time_comes_back_grown(tmp_path: Path) -> None:
    with opened(tmp_path) as store:
        store.grow_hub("h", 3)
        store.append("h", [_ev("new")], "rest", partition_id="2")
        assert store.partition_info("h", "2").last_enqueued_sequence_number == 0
    with opened(tmp_path) as store:
        assert store.hub("h").partition_ids == ("0", "1", "2")
        (event,), _ = store.events("h")
        assert (event.partition_id, event.sequence_number, event.request) == ("2", 0, 1)
        store.append("h", [_ev("next")], "rest", partition_id="2")
        assert [e.request for e in store.events("h")[0]] == [1, 2]  # request numbers go on
