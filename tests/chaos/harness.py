"""Chaos runs: a workload with a known truth, a fault while it runs, and a strict verdict.

The verdict compares what the hub stand-in received with the plain model of the rules
(tests/e2e.py): after dropping re-sent duplicates (same idempotency key, same body as an earlier
message), every user's messages must be exactly the model's, in order (0 lost transitions, 0
wrong final states, order kept). Duplicates are counted and reported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from audiencehub.processes import HubEmulator, wait_for
from tests.e2e import AUDIENCES, make_job, model, workload
from workers.audiences.store import AudienceStore
from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.jobs.backfill import Backfills
from workers.jobs.store import Job
from workers.pipeline.ingest import Ingestor, list_items


@dataclass
class Verdict:
    messages: int = 0
    duplicates: int = 0
    users: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.messages} messages, {self.duplicates} duplicates (same key and body as an "
            f"earlier one), {self.users} users checked, {len(self.problems)} problems"
        )


def audiences(engine: Engine) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("tier_a", 'FILTER tier == "a"')
    store.create("big", "FILTER value >= 50")


def setup(engine: Engine, hub: HubEmulator, **job_options: Any) -> Job:
    if not AudienceStore(engine.r, engine.keys).all():
        audiences(engine)
    return make_job(engine, hub, ["tier_a", "big"], **job_options)


def feed(engine: Engine, events: list[dict[str, Any]], waves: int, pause_s: float) -> None:
    """Ingest in waves, so the fault lands while work is in flight."""
    size = -(-len(events) // waves)
    for start in range(0, len(events), size):
        Ingestor(engine).ingest(list_items(events[start : start + size]))
        time.sleep(pause_s)


def settled(engine: Engine, job: Job) -> bool:
    e = engine
    pipe = e.r.pipeline(transaction=False)
    for shard in range(e.cfg.shards):
        pipe.xlen(e.keys.events(shard))
        Outbox(e.keys, shard, job.id).length(pipe)
    return not any(pipe.execute()) and not Backfills(e).active(job.id)


def verdict(
    events_at_hub: list[dict[str, Any]],
    truth: list[dict[str, Any]],
    backfilled: bool = False,
    before_job: int = 0,
) -> Verdict:
    """``before_job``: how many of the ``truth`` events were applied before the job existed
    (their transitions reach the hub only as the backfill's enters)."""
    v = Verdict(messages=len(events_at_hub))
    first: dict[str, str] = {}
    per_user: dict[str, list[list[tuple[str, str]]]] = {}
    for ev in events_at_hub:
        key = ev["user_properties"]["idempotency_key"]
        if key in first:
            v.duplicates += 1
            if first[key] != ev["body"]:
                v.problems.append(f"key {key} reused for a different message")
            continue
        first[key] = ev["body"]
        body = orjson.loads(ev["body"])
        segs = sorted((s["event"], s["slug"]) for s in body["data"]["segment_events"])
        per_user.setdefault(body["data"]["user_id"], []).append(segs)
    expected = model(truth)
    earlier = model(truth[:before_job])
    for uid, prefix in earlier.items():
        expected[uid] = expected[uid][len(prefix) :]
    final_fields: dict[str, dict[str, Any]] = {}
    for event in truth:
        final_fields.setdefault(event["user_id"], {}).update(event)
    for uid, fields in final_fields.items():
        v.users += 1
        got = per_user.get(uid, [])
        want = expected.get(uid, [])
        if not backfilled and got != want:
            v.problems.append(f"{uid}: got {got}, expected {want}")
            continue
        if backfilled and not _in_order(want, got):
            v.problems.append(f"{uid}: model transitions {want} not all in order in {got}")
        for slug, rule in AUDIENCES.items():
            last = next((e for m in reversed(got) for e, s in m if s == slug), None)
            inside = rule(fields)
            if (inside and last != "enter") or (not inside and last == "enter"):
                v.problems.append(f"{uid}: final {slug} is {last}, truth says inside={inside}")
    return v


def _in_order(want: list[list[tuple[str, str]]], got: list[list[tuple[str, str]]]) -> bool:
    it = iter(got)
    return all(any(m == w for m in it) for w in want)


class Chaos:
    """Runs ``action`` every ``every_s`` seconds in a thread until stopped."""

    def __init__(self, action: Callable[[], None], every_s: float) -> None:
        self._action = action
        self._every = every_s
        self._stop = threading.Event()
        self.count = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._action()
                self.count += 1
            except BaseException as exc:  # reported by stop()
                self.errors.append(exc)
                return

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.errors:
            raise self.errors[0]


def finish(
    engine: Engine, hub: HubEmulator, job: Job, timeout: float = 120
) -> list[dict[str, Any]]:
    wait_for(lambda: settled(engine, job), timeout, interval=0.5, what="the run to settle")
    time.sleep(1.5)
    return hub.events()


__all__ = ["Chaos", "Verdict", "audiences", "feed", "finish", "setup", "verdict", "workload"]
