"""The four chaos runs of issue 6, each ending in the same strict verdict (harness.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from audiencehub.processes import (
    CeleryBeat,
    CeleryWorker,
    HubEmulator,
    RedisServer,
    celery_env,
    wait_for,
)
from tests.chaos.harness import Chaos, audiences, feed, finish, setup, verdict, workload
from tests.helpers import SHARDS
from workers.config import load_settings
from workers.delivery.outbox import Outbox
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.control import JobControl

pytestmark = pytest.mark.e2e


def faults(hub: HubEmulator, plan: object | None) -> None:
    if plan is None:
        requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
    else:
        requests.put(f"{hub.base_url}/_emulator/faults", json=plan, timeout=5).raise_for_status()


@pytest.fixture
def two_workers(workdir: Path, proc_env: dict[str, str]) -> Iterator[list[CeleryWorker]]:
    procs = [CeleryWorker(workdir, proc_env, name=f"chaos{i}") for i in range(2)]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


def test_sigkill_random_workers_during_backfill_and_live_events(
    live_engine: Engine, hub: HubEmulator, two_workers: list[CeleryWorker], beat: CeleryBeat
) -> None:
    e = live_engine
    audiences(e)
    before = workload(users=400, rounds=1, seed=21)
    feed(e, before, waves=1, pause_s=0)
    wait_for(
        lambda: not any(e.r.xlen(e.keys.events(s)) for s in range(SHARDS)),
        60,
        what="the first round",
    )
    job = setup(e, hub, existing_users=True)
    live = workload(users=400, rounds=3, seed=22)
    rng = random.Random(4)

    def kill_one() -> None:
        victim = rng.choice(two_workers)
        victim.kill()
        victim.start()

    with Chaos(kill_one, every_s=3) as chaos:
        feed(e, live, waves=12, pause_s=0.8)
    got = finish(e, hub, timeout=150)
    v = verdict(got, before + live, backfilled=True, before_job=len(before))
    if v.problems:
        pipe = e.r.pipeline()
        for s in range(SHARDS):
            pipe.xlen(e.keys.events(s))
            Outbox(e.keys, s, job.id).length(pipe)
        print("streams/outboxes", pipe.execute(), "stats", e.r.hgetall(e.keys.job_stats(job.id)))
    print(f"\nchaos/sigkill ({chaos.count} kills): {v.summary()}")
    assert chaos.count >= 2
    assert not v.problems, v.problems[:5]


def test_throttling_and_connection_resets(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    setup(e, hub, max_batch_bytes=10_000)  # many small batches: many chances to fail
    faults(
        hub,
        {
            "seed": 3,
            "rules": [
                {"status": 503, "share": 0.15, "retry_after": 0, "face": "rest"},
                {"status": 429, "share": 0.15, "retry_after": 0, "face": "rest"},
                {"drop": True, "share": 0.05, "face": "rest"},
            ],
        },
    )
    events = workload(users=500, rounds=4, seed=31)
    feed(e, events, waves=8, pause_s=0.5)
    wait_for(
        lambda: not any(e.r.xlen(e.keys.events(s)) for s in range(SHARDS)), 60, what="the drains"
    )
    faults(hub, None)
    got = finish(e, hub)
    v = verdict(got, events)
    stats = requests.get(f"{hub.base_url}/_emulator/stats", timeout=5).json()
    print(f"\nchaos/throttle ({stats['faults_fired']} faults fired): {v.summary()}")
    assert sum(stats["faults_fired"].values()) >= 5
    assert not v.problems, v.problems[:5]


def test_redis_restart_mid_run(
    aof_redis: RedisServer, hub: HubEmulator, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = celery_env(aof_redis.url, AUDIENCEHUB_MODE="test", AUDIENCEHUB_SHARDS=str(SHARDS))
    for name in ("REDIS_URL", "AUDIENCEHUB_MODE", "AUDIENCEHUB_SHARDS"):
        monkeypatch.setenv(name, env[name])
    from tasks.app import make_app
    from tasks.sender import CeleryTaskSender

    cfg = load_settings()
    e = Engine.create(CeleryTaskSender(make_app(cfg.redis_url)), cfg=cfg)
    worker, beat = CeleryWorker(workdir, env), CeleryBeat(workdir, env)
    worker.start()
    beat.start()
    try:
        setup(e, hub)
        events = workload(users=400, rounds=4, seed=41)
        half = len(events) // 2
        feed(e, events[:half], waves=4, pause_s=0.3)
        aof_redis.stop()  # SIGTERM: Redis writes its append-only file and exits
        aof_redis.start()
        feed(e, events[half:], waves=4, pause_s=0.3)
        got = finish(e, hub, timeout=150)
        v = verdict(got, events)
        print(f"\nchaos/redis-restart: {v.summary()}")
        assert not v.problems, v.problems[:5]
    finally:
        worker.stop()
        beat.stop()
        redis.Redis.from_url(aof_redis.url).close()


def test_hub_refuses_auth_job_fails_then_resumes_after_the_fix(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    job = setup(e, hub)
    events = workload(users=300, rounds=3, seed=51)
    feed(e, events[: len(events) // 3], waves=2, pause_s=0.3)
    faults(hub, {"status": 401, "message": "SharedAccessKey revoked"})
    feed(e, events[len(events) // 3 :], waves=4, pause_s=0.3)
    control = JobControl(e)
    wait_for(lambda: control.store.get(job.id).state == "failed", 30, what="the job to fail")
    assert "authorization rejected" in control.store.get(job.id).reason
    faults(hub, None)  # the operator fixes the key on the hub side...
    AuthStore(e.r, e.keys, e.cfg)  # ...and nothing else changes for us
    control.resume(job.id)
    got = finish(e, hub)
    v = verdict(got, events)
    print(f"\nchaos/auth: {v.summary()}")
    assert not v.problems, v.problems[:5]
