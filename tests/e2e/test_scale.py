"""More than one worker, and more than one Redis: the same messages, in the same per-user order.

The expected messages come from a plain model of the rules (evaluate after every event, one
message per user change), so each run is checked against the truth, not against another run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from audiencehub.processes import (
    CeleryBeat,
    CeleryWorker,
    HubEmulator,
    LocalRedisCluster,
    celery_env,
    wait_for,
)
from tests.e2e.helpers import changes_by_user, model, workload
from tests.helpers import make_job
from workers.audiences.store import AudienceStore
from workers.config import load_settings
from workers.engine import Engine
from workers.pipeline.ingest import Ingestor, list_items
from workers.redisconn import state_redis

pytestmark = pytest.mark.e2e


def run(engine: Engine, hub: HubEmulator, events: list[dict[str, Any]]) -> None:
    store = AudienceStore(engine.r, engine.keys)
    store.create("tier_a", 'FILTER tier == "a"')
    store.create("big", "FILTER value >= 50")
    make_job(engine, hub, ["tier_a", "big"])
    Ingestor(engine).ingest(list_items(events))
    expected = sum(len(v) for v in model(events).values())
    wait_for(lambda: len(hub.events()) >= expected, 120, interval=0.5, what=f"{expected} messages")
    for shard in range(engine.cfg.shards):
        assert engine.r.xlen(engine.keys.events(shard)) == 0, f"shard {shard} not drained"


@pytest.fixture
def three_workers(workdir: Path, proc_env: dict[str, str]) -> Iterator[list[CeleryWorker]]:
    procs = [CeleryWorker(workdir, proc_env, name=f"w{i}") for i in range(3)]
    for proc in procs:
        proc.start()
    yield procs
    for proc in procs:
        proc.stop()


def test_three_workers_and_one_beat_give_the_one_worker_messages(
    live_engine: Engine, hub: HubEmulator, three_workers: list[CeleryWorker], beat: CeleryBeat
) -> None:
    events = workload(users=1000, rounds=4)
    run(live_engine, hub, events)
    assert changes_by_user(hub.events()) == model(events)
    busy = [w.name for w in three_workers if "audiencehub.drain_shard" in w.log()]
    assert len(busy) >= 2, f"the load should spread over the workers, only {busy} drained"


# docs/operations.md "Sizing": at least 64 shards, and at least 16 per master the cluster may
# ever have, so that every master holds a share of the shards and the share is even enough.
CLUSTER_SHARDS = 64
CLUSTER_MASTERS = 3


@pytest.fixture
def cluster(workdir: Path) -> Iterator[LocalRedisCluster]:
    nodes = LocalRedisCluster(workdir / "cluster", masters=CLUSTER_MASTERS)
    nodes.start()
    yield nodes
    nodes.stop()


def test_state_on_a_redis_cluster_with_the_broker_on_plain_redis(
    redis_url: str,
    cluster: LocalRedisCluster,
    hub: HubEmulator,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = celery_env(
        cluster.url,
        AUDIENCEHUB_MODE="test",
        AUDIENCEHUB_SHARDS=str(CLUSTER_SHARDS),
        AUDIENCEHUB_REDIS_CLUSTER="1",
        AUDIENCEHUB_BROKER_URL=redis_url,
    )
    for name, value in env.items():
        if name.startswith(("AUDIENCEHUB_", "REDIS_URL")):
            monkeypatch.setenv(name, value)
    cfg = load_settings()
    from tasks.app import make_app
    from tasks.sender import CeleryTaskSender

    engine = Engine.create(CeleryTaskSender(make_app(redis_url)), cfg=cfg, r=state_redis(cfg))
    worker = CeleryWorker(workdir, env, concurrency=2)
    beat = CeleryBeat(workdir, env)
    worker.start()
    beat.start()
    try:
        events = workload(users=300, rounds=3, seed=9)
        run(engine, hub, events)
        assert changes_by_user(hub.events()) == model(events)
        plain = redis.Redis.from_url(redis_url)
        assert not plain.keys("ah:*"), "no state may land on the broker's Redis"
        slots = {engine.r.keyslot(engine.keys.events(s)) for s in range(CLUSTER_SHARDS)}  # type: ignore[attr-defined]
        assert len(slots) == CLUSTER_SHARDS
        work = work_per_master(cluster)
        print("profiles and shard commits per master:", work)
        assert len(work) == CLUSTER_MASTERS
        assert all(users and commits for users, commits in work.values()), (
            f"every master must hold users and run shard commits: {work}"
        )
    finally:
        worker.stop()
        beat.stop()


def work_per_master(cluster: LocalRedisCluster) -> dict[int, tuple[int, int]]:
    """Per master's port: the users stored in its shards' hashes, and the scripts it ran."""
    work = {}
    for node in cluster.nodes:
        r = redis.Redis(port=node.port)
        users = sum(int(r.hlen(key)) for key in r.scan_iter(match="*:users", count=1000))
        stats = r.info("commandstats")
        commits = sum(
            int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
        )
        work[node.port] = (users, commits)
    return work
