"""Paced drain kicks: a group's first kick goes at once, one within the interval waits for it
(and takes every kick meanwhile with it), and nothing held back is ever dropped."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from tests.helpers import RecordingSender, with_settings
from workers.config import Settings
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.ingest import Ingestor, list_items
from workers.schedule.pacing import KickPacer

LIVENESS_S = 10.0
"""How long a test waits for a held-back kick before calling it lost (not a timing claim)."""


class Sends:
    """What a pacer sent, and on which thread, with a way to wait for the next send."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], str]] = []
        self.arrived = threading.Event()

    def __call__(self, leads: list[int]) -> None:
        self.calls.append((leads, threading.current_thread().name))
        self.arrived.set()

    def leads(self) -> list[list[int]]:
        return [leads for leads, _ in self.calls]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_first_kick_goes_at_once_on_the_callers_thread() -> None:
    sends = Sends()
    KickPacer(0.05, sends).submit([0, 2])
    assert sends.calls == [([0, 2], threading.current_thread().name)]


def test_a_kick_within_the_interval_waits_and_takes_the_others_with_it() -> None:
    sends, clock = Sends(), Clock()
    pacer = KickPacer(0.05, sends, clock)
    pacer.submit([0])
    sends.arrived.clear()
    clock.now += 0.01
    for _ in range(5):
        pacer.submit([0])  # within the interval: held back, once
    assert sends.leads() == [[0]]
    assert pacer.waiting() == [0]
    clock.now += 0.05  # the interval is up
    assert sends.arrived.wait(LIVENESS_S)
    assert sends.leads() == [[0], [0]]
    assert sends.calls[1][1] == "audiencehub-kick-pacer"
    assert pacer.waiting() == []


def test_groups_are_paced_apart() -> None:
    sends, clock = Sends(), Clock()
    pacer = KickPacer(0.05, sends, clock)
    pacer.submit([0])
    clock.now += 0.01
    pacer.submit([0, 4])  # 4's first kick goes at once; 0 waits
    assert sends.leads() == [[0], [4]]
    assert pacer.waiting() == [0]


def test_a_kick_after_a_quiet_spell_goes_at_once() -> None:
    sends, clock = Sends(), Clock()
    pacer = KickPacer(0.05, sends, clock)
    pacer.submit([0])
    clock.now += 0.2
    pacer.submit([0])
    assert sends.leads() == [[0], [0]]
    assert pacer.waiting() == []


def test_flush_sends_what_waits() -> None:
    sends, clock = Sends(), Clock()
    pacer = KickPacer(60.0, sends, clock)
    pacer.submit([0, 4])
    pacer.submit([0, 4])
    assert pacer.waiting() == [0, 4]
    pacer.flush()
    assert sends.leads() == [[0, 4], [0, 4]]
    assert pacer.waiting() == []


def test_a_failing_send_does_not_end_pacing() -> None:
    clock = Clock()
    sent: list[list[int]] = []
    arrived = threading.Event()

    def send(leads: list[int]) -> None:
        sent.append(leads)
        arrived.set()
        if len(sent) == 2:
            raise RuntimeError("a bug in a sender")

    pacer = KickPacer(0.05, send, clock)
    pacer.submit([0])
    arrived.clear()
    pacer.submit([0])
    clock.now += 0.05
    assert arrived.wait(LIVENESS_S)  # sent (and raised) on the pacer's thread
    arrived.clear()
    pacer.submit([0])  # within the interval of that send: waits for the same thread
    clock.now += 0.05
    assert arrived.wait(LIVENESS_S)
    assert sent == [[0], [0], [0]]


@pytest.fixture
def paced(cfg: Settings, sender: RecordingSender) -> Iterator[Engine]:
    """An engine whose intake kicks are paced to a minute: the second is held back for sure."""
    r = redis.Redis.from_url(cfg.redis_url)
    yield Engine.create(sender, cfg=with_settings(cfg, drain_kick_interval_ms=60_000), r=r)
    r.close()


def test_the_intake_paces_its_kicks_and_keeps_the_flag_meanwhile(
    paced: Engine, sender: RecordingSender
) -> None:
    """Through the intake script's fresh flags: the first write's drain is queued at once; a
    write after that drain let go of its flag sets the flag again (so writes after it queue
    nothing) and its drain waits for the interval, then goes out."""
    e = paced
    uid = "u1"
    lead = e.drain_groups.lead(shard_of(uid, e.cfg.shards))
    Ingestor(e).ingest(list_items([{"user_id": uid, "n": 1}]))
    assert sender.drains == [lead]
    e.r.delete(e.keys.drain_kick(lead))  # the drain ran and let go of its flag
    Ingestor(e).ingest(list_items([{"user_id": uid, "n": 2}]))
    assert sender.drains == [lead]  # held back
    assert e.r.exists(e.keys.drain_kick(lead))  # and the flag is held: no other kick goes
    assert e.kicker.pacer is not None
    assert e.kicker.pacer.waiting() == [lead]
    e.kicker.pacer.flush()
    assert sender.drains == [lead, lead]


def test_no_interval_no_pacer(cfg: Settings, sender: RecordingSender) -> None:
    r = redis.Redis.from_url(cfg.redis_url)
    try:
        e = Engine.create(sender, cfg=with_settings(cfg, drain_kick_interval_ms=0), r=r)
        assert e.kicker.pacer is None
        uid = "u1"
        lead = e.drain_groups.lead(shard_of(uid, e.cfg.shards))
        Ingestor(e).ingest(list_items([{"user_id": uid, "n": 1}]))
        e.r.delete(e.keys.drain_kick(lead))
        Ingestor(e).ingest(list_items([{"user_id": uid, "n": 2}]))
        assert sender.drains == [lead, lead]
    finally:
        r.close()
