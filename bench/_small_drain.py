"""What one small drain task costs in our own code: a few events per drain group, in-process.

Not part of ``make bench`` (the leading underscore): the fixed cost a drain task pays however
few events it finds (leases, reads, commit, counters, release), without Celery's share, which
``bench/realtime.py`` at a moderate rate shows from outside. The realtime workload
(bench/realtime.py's audiences and events), a private redis-server, no hub.

    .venv/bin/python bench/_small_drain.py [--per-group 1] [--rounds 600] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from realtime import AUDIENCES, make_event  # noqa: E402

from audiencehub.processes import RedisServer  # noqa: E402
from workers.audiences.store import AudienceStore  # noqa: E402
from workers.config import load_settings  # noqa: E402
from workers.engine import Engine  # noqa: E402
from workers.pipeline.drain import ShardDrainer  # noqa: E402
from workers.pipeline.ingest import Ingestor, list_items  # noqa: E402
from workers.schedule.kicks import NoSender  # noqa: E402

SHARDS = 16


class CommandCounter:
    """Redis commands run since it was made, from the server's own count (which includes the
    commands a script runs, so it is more than the client sent)."""

    def __init__(self, r: redis.Redis) -> None:
        self._r = r
        self._start = self._read()

    def _read(self) -> int:
        stats = self._r.info("stats")
        return int(stats["total_commands_processed"])

    def since(self) -> int:
        return self._read() - self._start - 1  # less the INFO that reads it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-group", type=int, default=1, help="events per group per round")
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    server = RedisServer(
        Path(tempfile.mkdtemp(prefix="audiencehub-small-drain-")), appendonly=False
    )
    server.start()
    try:
        os.environ.update(
            REDIS_URL=server.url, AUDIENCEHUB_SHARDS=str(SHARDS), AUDIENCEHUB_MODE="demo"
        )
        cfg = load_settings()
        e = Engine.create(NoSender(), cfg=cfg, r=redis.Redis.from_url(server.url))
        store = AudienceStore(e.r, e.keys)
        for i, text in enumerate(AUDIENCES):
            store.create(f"a{i:02d}", text)
        rng = random.Random(7)
        now = time.time_ns()
        ingestor, drainer = Ingestor(e), ShardDrainer(e)
        leads = sorted(set(e.drain_groups.leads(range(SHARDS))))
        groups = len(leads)

        def write() -> None:
            batch = [make_event(rng, now) for _ in range(args.per_group * groups)]
            ingestor.ingest(list_items(batch))

        def drain() -> None:
            for lead in leads:
                drainer.drain(lead)

        for _ in range(100):  # warm: profiles exist, audiences compiled
            write()
            drain()
        profiler = cProfile.Profile() if args.profile else None
        spent = 0.0
        commands = 0
        for _ in range(args.rounds):
            write()
            counter = CommandCounter(e.r)
            start = time.process_time()
            if profiler:
                profiler.enable()
            drain()
            if profiler:
                profiler.disable()
            spent += time.process_time() - start
            commands += counter.since()
        tasks = args.rounds * groups
        print(
            f"{args.per_group} event(s) a group, {groups} groups of {SHARDS // groups} shards: "
            f"{spent / tasks * 1e6:.0f} us CPU a drain task (this process), "
            f"{commands / tasks:.0f} Redis commands a task (those run inside scripts included)"
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
