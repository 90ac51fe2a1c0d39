"""Where a drain's (or a backfill page's) time goes: a fixed stream, in-process, real redis-server.

Not part of ``make bench`` (the leading underscore): a tool for finding the hot path. The same
seeded stream of events (bench/realtime.py's workload) is drained in this process, first to warm
the profiles up, then measured; ``--tree`` runs another checkout's engine (say /work/main) on the
same workload, so two trees compare in one sitting on a shared machine.

    .venv/bin/python bench/_profile_drain.py [--tree DIR] [--events 30000] [--profile] [--backfill N]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

CONN = (
    "Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=k;SharedAccessKey=a2V5;"
    "EntityPath=h;UseDevelopmentEmulator=true"
)


def _setup(tree: Path) -> None:
    sys.path.insert(0, str(tree))
    sys.path.insert(1, str(tree / "bench"))


def run(args: argparse.Namespace) -> None:
    import redis
    from realtime import AUDIENCES, make_event  # type: ignore[import-not-found,unused-ignore]

    import workers
    from audiencehub.processes import HubEmulator, RedisServer
    from workers.audiences.store import AudienceStore
    from workers.config import load_settings
    from workers.engine import Engine
    from workers.jobs.auths import AuthStore
    from workers.jobs.store import JobStore
    from workers.pipeline.drain import ShardDrainer
    from workers.pipeline.ingest import Ingestor, list_items

    print(f"engine from {Path(workers.__file__).parent.parent}")
    workdir = Path(tempfile.mkdtemp(prefix="audiencehub-prof-"))
    server = RedisServer(workdir, appendonly=False)
    server.start()
    hub = None
    if args.deliver:
        hub = HubEmulator(workdir, extra=["--max-events", "5000000", "--when-full", "drop-oldest"])
        hub.start()
    try:
        import os

        os.environ["REDIS_URL"] = server.url
        os.environ["AUDIENCEHUB_SHARDS"] = "16"
        os.environ.setdefault("AUDIENCEHUB_MODE", "demo")
        cfg = load_settings()
        e = Engine.create(cfg=cfg, r=redis.Redis.from_url(server.url))
        store = AudienceStore(e.r, e.keys)
        for i, text in enumerate(AUDIENCES):
            store.create(f"a{i:02d}", text)
        auth = AuthStore(e.r, e.keys, e.cfg).create("h", hub.connection_string if hub else CONN)
        job = JobStore(e.r, e.keys).create(
            "rt",
            auth.id,
            [store.get(f"a{i:02d}").id for i in range(len(AUDIENCES))],
            fields=("_created", "_modified", "email", "user_id", "probe"),
        )
        if args.backfill:
            backfill(e, server, hub, args)
            return
        rng = random.Random(7)
        now = time.time_ns()

        def load(events: int) -> None:
            for first in range(0, events, 5000):
                batch = [make_event(rng, now) for _ in range(min(5000, events - first))]
                Ingestor(e).ingest(list_items(batch))

        def drain_all() -> None:
            drainer = ShardDrainer(e)
            for shard in range(e.cfg.shards):
                drainer.drain(shard, budget_s=600)

        load(args.warm)
        drain_all()
        for name in e.r.scan_iter(match="*outbox*"):
            e.r.delete(name)
        best = float("inf")
        best_cpu: tuple[float, ...] = (float("inf"), 0.0)
        profiler = cProfile.Profile() if args.profile else None
        for _ in range(args.repeat):
            load(args.events)
            meter = Meter(server)
            if profiler:
                profiler.enable()
            drain_all()
            if profiler:
                profiler.disable()
            took, cpu = meter.read()
            best = min(best, took)
            best_cpu = min(best_cpu, cpu)
        print(
            f"drain of {args.events:,} events: {args.events / best:,.0f} events/s wall (best of "
            f"{args.repeat}{', profiled' if profiler else ''}); CPU per event: "
            f"{best_cpu[0] / args.events * 1e6:.0f} us here + {best_cpu[1] / args.events * 1e6:.0f}"
            " us redis"
        )
        if profiler:
            report(profiler, args.top)
        if hub is not None:
            deliver(e, server, hub, job.id, profiler is not None, args.top)
    finally:
        if hub is not None:
            hub.stop()
        server.stop()


class Meter:
    """Wall seconds, and CPU seconds of this process and each server, since it was made: on a
    shared machine CPU per event is the steadier figure."""

    def __init__(self, *servers: Any) -> None:
        self._pids = [s.proc.pid for s in servers]
        self._t0 = time.perf_counter()
        self._c0 = self._cpu()

    def _cpu(self) -> list[float]:
        from _common import cpu_seconds  # type: ignore[import-not-found,unused-ignore]

        return [time.process_time(), *(cpu_seconds(p, children=False) for p in self._pids)]

    def read(self) -> tuple[float, tuple[float, ...]]:
        now = self._cpu()
        return time.perf_counter() - self._t0, tuple(
            b - a for a, b in zip(self._c0, now, strict=True)
        )


def deliver(e: Any, server: Any, hub: Any, job_id: str, profile: bool, top: int) -> None:
    """Send what the measured drains left in the outbox to the hub stand-in, in-process."""
    from workers.delivery.deliver import Deliverer, SenderPool

    pool = SenderPool(e)
    deliverer = Deliverer(e, pool.get)
    backlog = deliverer.backlog(job_id)
    profiler = cProfile.Profile() if profile else None
    meter = Meter(server, hub)
    if profiler:
        profiler.enable()
    sent = 0
    while deliverer.backlog(job_id):
        done = deliverer.deliver(job_id, budget_s=600)
        sent += done.sent
        if done.error:
            print(f"deliver stopped: {done.error}")
            break
    if profiler:
        profiler.disable()
    took, cpu = meter.read()
    print(
        f"deliver of {backlog:,} messages: {sent / took:,.0f} messages/s wall; CPU per message: "
        f"{cpu[0] / sent * 1e6:.0f} us here + {cpu[1] / sent * 1e6:.0f} us redis + "
        f"{cpu[2] / sent * 1e6:.0f} us hub"
    )
    if profiler:
        report(profiler, top)
    pool.close()
    deliverer.close()


def backfill(e: Any, server: Any, hub: Any, args: argparse.Namespace) -> None:
    """Backfill pages into the outboxes, in-process; with ``--deliver``, then send them."""
    from backfill import populate  # type: ignore[import-not-found,unused-ignore]

    import workers.jobs.backfill as bf
    from workers.jobs.auths import AuthStore
    from workers.jobs.backfill import Backfills
    from workers.jobs.store import JobStore

    stack: Any = SimpleNamespace(engine=e)  # what bench/backfill.py's populate reads
    vip, active = populate(stack, args.backfill)
    auth = AuthStore(e.r, e.keys, e.cfg).create("b", hub.connection_string if hub else CONN)
    job = JobStore(e.r, e.keys).create("b", auth.id, [vip, active], existing_users=True)
    bf.BACKLOG_LIMIT = 10**9  # measure pages, not flow control
    backfills = Backfills(e)
    backfills.start(job, started=e.clock.now_ns())
    profiler = cProfile.Profile() if args.profile else None
    meter = Meter(server)
    if profiler:
        profiler.enable()
    written = 0
    for shard in range(e.cfg.shards):
        while True:
            page = backfills.page(job.id, shard)
            written += page.written
            if page.done:
                break
    if profiler:
        profiler.disable()
    took, cpu = meter.read()
    print(
        f"backfill pages: {written:,} users in {took:.2f}s = {written / took:,.0f} users/s wall; "
        f"CPU per user: {cpu[0] / written * 1e6:.0f} us here + {cpu[1] / written * 1e6:.0f} us redis"
    )
    if profiler:
        report(profiler, args.top)
    if hub is not None:
        deliver(e, server, hub, job.id, profiler is not None, args.top)


def report(profiler: cProfile.Profile, top: int) -> None:
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    groups = {
        "Redis round trips (read, commit script)": ("redis/", "hiredis", "socket"),
        "audience evaluation (FilterQL)": ("filterql/",),
        "rendering messages": ("envelope.py", "timefmt.py"),
        "profiles (decode, merge, encode)": ("profile.py", "entries.py", "orjson"),
        "drain loop, membership": ("drain.py", "membership.py", "commit.py", "registry.py"),
    }
    spent = dict.fromkeys(groups, 0.0)
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for group, needles in groups.items():
            if any(n in filename or n in name for n in needles):
                spent[group] += row[2]
                break
    for group, seconds in spent.items():
        print(f"  {group:<42} {seconds / total:5.0%}")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--warm", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--deliver", action="store_true", help="then send the outbox to a hub")
    parser.add_argument("--backfill", type=int, default=0, help="members: profile backfill pages")
    args = parser.parse_args()
    _setup(args.tree.resolve())
    run(args)


if __name__ == "__main__":
    main()
