"""Ingest: what the all-or-nothing intake costs, and what each remembered event id takes.

Against a private redis-server, stores the same events (16 shards) through:

- the baseline measured in the same run: one pipelined XADD per event (what ingest did before
  the intake script; no atomicity, no dedup);
- the intake script without event ids;
- the intake script with an ``_id`` on every event (dedup on, one hour window).

For each it prints events/s from ``Ingestor.ingest`` (validation included) and the time Redis
spends inside one write (INFO commandstats: usec per call), which is how long the write holds
Redis. Then the memory each remembered id takes (the seen sets' MEMORY USAGE / ids). Prints
figures; asserts nothing.

    .venv/bin/python bench/intake.py [--events 100000] [--per-request 100,1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from audiencehub.processes import RedisServer  # noqa: E402
from workers.config import load_settings  # noqa: E402
from workers.engine import Engine  # noqa: E402
from workers.keys import Keys, shard_of  # noqa: E402
from workers.pipeline.entries import DATA, Entry  # noqa: E402
from workers.pipeline.ingest import Ingestor, list_items  # noqa: E402
from workers.schedule.kicks import NoSender  # noqa: E402

SHARDS = 16


def events(n: int, start: int, ids: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        ev: dict[str, Any] = {
            "user_id": f"user{i % 50_000}",
            "event": "view",
            "plan": "pro",
            "email": f"u{i}@example.com",
        }
        if ids:
            ev["_id"] = f"4b9d2f0e-{i:012d}"
        out.append(ev)
    return out


def pipelined(engine: Engine, batch: list[dict[str, Any]]) -> None:
    """The baseline: validate like ingest, then one XADD per event in one pipeline."""
    now = engine.clock.now_ns()
    pipe = engine.r.pipeline(transaction=False)
    for raw in batch:
        uid = str(raw["user_id"])
        fields = {k: v for k, v in raw.items() if k not in ("event", "_id")}
        entry = Entry(DATA, uid, now, raw.get("event"), fields)
        pipe.xadd(engine.keys.events(shard_of(uid, SHARDS)), {"d": entry.encode()})
    pipe.execute()


def run(engine: Engine, total: int, per_request: int, mode: str) -> tuple[float, float]:
    engine.r.flushall()
    engine.r.config_resetstat()
    engine.r.set(engine.keys.shards, SHARDS)
    ingestor = Ingestor(engine)
    start = time.perf_counter()
    for n in range(0, total, per_request):
        batch = events(per_request, n, ids=mode == "intake, ids")
        if mode == "pipelined XADD":
            pipelined(engine, batch)
        else:
            ingestor.ingest(list_items(batch))
    rate = total / (time.perf_counter() - start)
    stats = engine.r.info("commandstats")
    cmd = stats.get("cmdstat_evalsha") or stats.get("cmdstat_exec") or {}
    if mode == "pipelined XADD":
        xadd = stats.get("cmdstat_xadd", {})
        held = xadd.get("usec", 0) / max(1, total // per_request)
    else:
        held = cmd.get("usec_per_call", 0.0)
    return rate, held


def seen_bytes(engine: Engine) -> tuple[int, int]:
    used = ids = 0
    for key in engine.r.scan_iter(match=engine.keys.seen_ids_pattern, count=1000):
        used += int(engine.r.memory_usage(key, samples=0) or 0)
        ids += int(engine.r.scard(key))
    return used, ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-request", default="100,1000")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="audiencehub-bench-intake-"))
    server = RedisServer(workdir, appendonly=False)
    server.start()
    try:
        cfg = dataclasses.replace(
            load_settings(), redis_url=server.url, shards=SHARDS, mode="test", prefix="bench"
        )
        r = redis.Redis.from_url(server.url)
        r.set(Keys(cfg.prefix).shards, SHARDS)
        engine = Engine.create(NoSender(), cfg=cfg, r=r)
        print(f"{args.events:,} events, {SHARDS} shards, redis {r.info()['redis_version']}")
        for per_request in (int(x) for x in args.per_request.split(",")):
            base = None
            for mode in ("pipelined XADD", "intake", "intake, ids"):
                rate, held = run(engine, args.events, per_request, mode)
                base = base or rate
                print(
                    f"  {per_request:>5} per request, {mode:<15} {rate:>9,.0f} events/s "
                    f"({rate / base:.2f}x baseline); Redis busy {held / 1000:.2f} ms "
                    "per request"
                )
        used, ids = seen_bytes(engine)
        print(
            f"remembered ids: {ids:,} in {used / 1e6:.1f} MB = {used / max(ids, 1):.0f} bytes each"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
