"""End to end through real processes: redis-server, the hub stand-in, celery worker and beat."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator, wait_for
from tests.e2e.helpers import changes_by_user, settle, wait_messages
from tests.helpers import bodies, make_job
from workers import faults
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.pipeline.ingest import Ingestor, list_items

pytestmark = pytest.mark.e2e

EVENTS = [
    {"user_id": "u1", "plan": "pro", "email": "u1@example.com", "score": 20},
    {"user_id": "u2", "plan": "free", "score": 5},
    {"user_id": "u1", "plan": "free", "event": "downgrade"},
    {"user_id": "u2", "score": 15, "email": "u2@example.com"},
    {"user_id": "u1", "plan": "pro", "event": "upgrade"},
    {"user_id": "u2", "score": 1},
    {"user_id": "u3", "plan": "free"},
]
EXPECTED = {  # as in the seed: what changed, and beside it the audiences the user stays in
    "u1": [
        [("enter", "hi_score"), ("enter", "pro")],
        [("enter", "hi_score"), ("exit", "pro")],
        [("enter", "hi_score"), ("enter", "pro")],
    ],
    "u2": [[("enter", "hi_score")], [("exit", "hi_score")]],
}


def setup_audiences(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("pro", 'FILTER plan == "pro"')
    store.create("hi_score", "FILTER AND (score >= 10, EXISTS email)")


def test_enter_exit_and_reenter_arrive_in_order_exactly_once(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker
) -> None:
    setup_audiences(live_engine)
    job = make_job(live_engine, hub, ["pro", "hi_score"])
    result = Ingestor(live_engine).ingest(list_items(EVENTS))
    assert (result.accepted, result.rejected) == (7, 0)

    wait_messages(hub, 5)
    settle(live_engine)  # every message acknowledged: anything extra has arrived by now
    events = hub.events()
    assert changes_by_user(events) == EXPECTED

    first = bodies(events)[0]
    assert list(first) == ["data", "meta"]
    assert list(first["data"]) == ["_created", "_modified", "email", "user_id", "segment_events"]
    assert first["meta"]["object"] == "user"
    assert first["meta"]["subscription_id"] == job.id
    for segment in first["data"]["segment_events"]:
        assert list(segment) == ["id", "event", "enter", "exit", "slug"]
        assert segment["exit"].startswith("2099-")
        assert segment["enter"] == first["meta"]["timestamp"]
    exit_msg = next(b for b in bodies(events) if b["data"]["segment_events"][0]["event"] == "exit")
    seg = exit_msg["data"]["segment_events"][0]
    assert seg["exit"] == exit_msg["meta"]["timestamp"] and seg["enter"] < seg["exit"]
    if exit_msg["data"]["user_id"] == "u1":  # still in hi_score: carried as in the seed
        (stays,) = exit_msg["data"]["segment_events"][1:]
        assert (stays["event"], stays["slug"]) == ("enter", "hi_score")
        assert stays["enter"] == first["meta"]["timestamp"] and stays["exit"].startswith("2099-")
    for ev in events:
        assert ev["partition_key"] == orjson.loads(ev["body"])["data"]["user_id"]
        assert len(ev["user_properties"]["idempotency_key"]) == 32


def test_fields_are_those_at_the_moment_of_change(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker
) -> None:
    setup_audiences(live_engine)
    make_job(live_engine, hub, ["pro"])
    Ingestor(live_engine).ingest(
        list_items(
            [
                {"user_id": "m", "plan": "pro", "email": "old@example.com"},
                {"user_id": "m", "email": "new@example.com"},
                {"user_id": "m", "plan": "free"},
            ]
        )
    )
    events = wait_messages(hub, 2)
    emails = [b["data"]["email"] for b in bodies(events)]
    assert emails == ["old@example.com", "new@example.com"]


def _arm_and_run(
    live_engine: Engine,
    hub: HubEmulator,
    worker: CeleryWorker,
    beat: CeleryBeat,
    point: str,
) -> list[dict[str, Any]]:
    setup_audiences(live_engine)
    make_job(live_engine, hub, ["pro", "hi_score"])
    faults.arm(live_engine.cfg, live_engine.r, point)
    Ingestor(live_engine).ingest(list_items(EVENTS))
    wait_for(
        lambda: int(live_engine.r.hget(live_engine.keys.faults, point) or 0) <= 0,
        30,
        what=f"the fault {point} to fire",
    )
    worker.kill()  # the whole worker, not just the pool child: a machine going away
    worker.start()
    wait_messages(hub, 5)
    # The kill may have lost a kick: beat's sweep re-kicks what was left pending. The killed
    # deliverer's lease must expire (15 s) before its batch is sent again.
    settle(live_engine, worker, sweeps=2, timeout=60)
    return hub.events()


def test_sigkill_between_commit_and_ack_loses_and_doubles_nothing(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    events = _arm_and_run(live_engine, hub, worker, beat, "drain.after_commit")
    assert changes_by_user(events) == EXPECTED


def test_sigkill_after_send_before_ack_resends_with_the_same_idempotency_key(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    events = _arm_and_run(live_engine, hub, worker, beat, "deliver.after_send")
    keys = [e["user_properties"]["idempotency_key"] for e in events]
    first_seen: dict[str, object] = {}
    deduped = []
    for key, ev in zip(keys, events, strict=True):
        if key in first_seen:
            assert ev["body"] == first_seen[key]
            continue
        first_seen[key] = ev["body"]
        deduped.append(ev)
    assert len(events) > len(deduped), "the kill after send must cause a re-send"
    assert changes_by_user(deduped) == EXPECTED
