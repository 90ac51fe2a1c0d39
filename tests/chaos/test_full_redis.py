"""Say when you are full: /collect flooded at Redis's memory limit and past the backlog bound.

One Redis (AOF on) is state store and broker, as in the smallest deployment. With the workers
stopped, a flood of /collect requests (each 100 events with ids, over every shard) runs into
Redis's ``maxmemory`` (503) and then, with memory raised, into ``AUDIENCEHUB_MAX_BACKLOG`` (429).
Redis is then made full again and a worker and beat are started on it: they must ride it out.
Memory is freed, the workers drain everything, the refused requests are sent again (and a few
acknowledged ones too, as a client that lost the answer would). The verdict: every refusal was a
429 or 503 with Retry-After and stored nothing, every acknowledged event is applied exactly once,
no worker died.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from audiencehub.processes import (
    CeleryBeat,
    CeleryWorker,
    Managed,
    RedisServer,
    celery_env,
    wait_for,
)
from tests.api.helpers import TOKEN, api_process
from tests.helpers import engine_for
from workers.engine import Engine
from workers.pipeline.profiles import stored_profile

pytestmark = pytest.mark.e2e
SHARDS = 4
USERS = 200
PER_REQUEST = 100
BACKLOG = 8000
PREFIX = "full"


class Flood:
    """Numbered requests of PER_REQUEST events, each with a unique ``_id``."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/collect/flood"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.sent = 0
        self.acked: dict[int, list[dict[str, Any]]] = {}
        self.refused: dict[int, list[dict[str, Any]]] = {}
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []

    def body(self, n: int) -> list[dict[str, Any]]:
        return [
            {
                "user_id": f"c{(n * 37 + i) % USERS}",
                "event": "hit",
                "_id": f"{n}-{i}",
                "pad": "p" * 200,
            }
            for i in range(PER_REQUEST)
        ]

    def post(self, n: int, events: list[dict[str, Any]]) -> requests.Response:
        resp = self.session.post(self.url, json=events, timeout=60)
        self.statuses[resp.status_code] += 1
        if resp.status_code == 202:
            self.acked[n] = events
            self.refused.pop(n, None)
        elif resp.status_code in (429, 503):
            if not resp.headers.get("Retry-After", "").isdigit():
                self.problems.append(f"request {n}: {resp.status_code} without Retry-After")
            self.refused[n] = events
        else:
            self.problems.append(f"request {n}: {resp.status_code} {resp.text[:200]}")
        return resp

    def until(self, status: int, at_least: int, limit: int = 400) -> None:
        """Send new requests, four at a time, until ``at_least`` answers were ``status``."""
        seen = self.statuses[status]
        with ThreadPoolExecutor(4) as pool:
            while self.statuses[status] - seen < at_least:
                assert self.sent < limit, f"no {status} after {limit} requests: {self.statuses}"
                batch = range(self.sent, self.sent + 4)
                self.sent += 4
                list(pool.map(lambda n: self.post(n, self.body(n)), batch))


def queued(e: Engine) -> int:
    return sum(int(e.r.xlen(e.keys.events(s))) for s in range(SHARDS))


def stored_matches_acked(e: Engine, flood: Flood) -> None:
    """With no worker running, what is queued is exactly what was acknowledged: no refused
    request left part of itself behind."""
    acked = sum(len(v) for v in flood.acked.values())
    assert queued(e) == acked, f"{queued(e)} queued, {acked} acknowledged"


def test_flood_at_the_memory_limit_and_past_the_backlog_bound(
    aof_redis: RedisServer, workdir: Path
) -> None:
    with api_process(aof_redis, workdir, PREFIX, AUDIENCEHUB_MAX_BACKLOG=str(BACKLOG)) as (
        api,
        cfg,
    ):
        e = engine_for(cfg)
        flood = Flood(api.base_url)

        # 1. Redis at its memory limit: 503, nothing of a refused request stored.
        used = int(e.r.info("memory")["used_memory"])
        e.r.config_set("maxmemory", used + 2_500_000)
        flood.until(503, at_least=8)
        stored_matches_acked(e, flood)
        assert queued(e) < BACKLOG

        # 2. Memory raised, workers still stopped: the backlog bound answers 429.
        e.r.config_set("maxmemory", 0)
        flood.until(429, at_least=8)
        stored_matches_acked(e, flood)

        # 3. Redis full again; a worker and beat start on it and must ride it out.
        e.r.config_set("maxmemory", int(e.r.info("memory")["used_memory"]))
        env = celery_env(
            cfg.redis_url,
            AUDIENCEHUB_MODE="test",
            AUDIENCEHUB_SHARDS=str(SHARDS),
            AUDIENCEHUB_PREFIX=PREFIX,
            # The verdict counts each user's applied events by their occurrences; no audience
            # counts "hit", so by default only a few are kept (docs/operations.md, Limits).
            AUDIENCEHUB_OCCURRENCES_KEPT="10000",
        )
        worker = CeleryWorker(workdir, env, concurrency=2)
        beat = CeleryBeat(workdir, env)
        Managed.start(worker)
        Managed.start(beat)
        try:
            wait_for(
                lambda: "maxmemory" in worker.log(), 30, what="the worker to meet the full Redis"
            )
            assert flood.post(10_000, flood.body(10_000)).status_code in (429, 503)
            assert worker.running and beat.running

            # 4. Memory freed: the worker comes up and drains everything.
            e.r.config_set("maxmemory", 0)
            worker.wait_log(" ready.", timeout=60)
            wait_for(lambda: queued(e) == 0, 120, interval=0.2, what="the backlog to drain")

            # 5. The refused requests again (a client honouring Retry-After), and a few
            #    acknowledged ones again (a client that lost the answer).
            for n, body in sorted(flood.refused.items()):
                resp = flood.post(n, body)
                assert resp.status_code == 202, resp.text
            for n in sorted(flood.acked)[:5]:
                resp = flood.post(n, flood.acked[n])
                assert resp.json()["duplicates"] == PER_REQUEST
            wait_for(lambda: queued(e) == 0, 120, interval=0.2, what="the retries to drain")
            time.sleep(0.5)
            assert worker.running and beat.running, "no process died"
        finally:
            worker.stop()
            beat.stop()
        assert not flood.problems, flood.problems[:5]

        # Exactly once: each user's "hit" count is the number of distinct events sent for it.
        want: Counter[str] = Counter()
        for body in flood.acked.values():
            for ev in body:
                want[ev["user_id"]] += 1
        for uid, count in want.items():
            got = len(stored_profile(e, uid).occurrences.get("hit", []))
            assert got == count, f"{uid}: applied {got}, acknowledged {count}"
        print(
            f"\n{dict(flood.statuses)} answers; {sum(want.values())} events applied once "
            f"for {len(want)} users"
        )
        redis.Redis.from_url(cfg.redis_url).close()
