"""Realtime: events at a fixed rate through real workers to the hub; throughput and latency.

20 audiences (some with timewindow and date math) over 100,000 users. For 1, 2 and 4 worker
processes: events at 2,000/s (latency from accepted to the hub's 201, p50/p95/p99) and at a high
rate (sustained events/s: applied per second while the backlog stays bounded). Then an
in-process drain of the same workload, profiled, says where a worker's time goes. Prints
figures; asserts nothing.

    .venv/bin/python bench/realtime.py [--seconds 10] [--rates 2000,10000,20000,25000] [--workers 1,2,4]
        [--shards 16] [--shards-per-drain 4]

The rates are issue 15's: p99 at 2,000/s and at 10,000/s, and what is sustained when 20,000/s
is offered; each line also gives the CPU per event of the workers and of every process, and
the rate at which that CPU fills the 2 cores. "Sustained" is events sent over the time until the
last was drained, so at a rate the stack keeps up with it reads a little under the offered rate
(the last step's events still take their latency); offered more than it can take (25,000/s), it
is the stack's capacity.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from typing import Any

import orjson
import requests
from _common import CpuMeter, Stack, percentile

from workers.audiences.store import AudienceStore
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.pipeline.drain import ShardDrainer
from workers.pipeline.ingest import Ingestor, list_items
from workers.timefmt import NS_PER_DAY, format_rfc3339, parse_rfc3339

USERS = 100_000
AUDIENCES = [
    'FILTER plan == "pro"',
    "FILTER score >= 50",
    "FILTER AND (score >= 20, EXISTS email)",
    "FILTER timewindow(purchase, 2, 7)",
    'FILTER last_seen > "now-7d"',
    'FILTER country IN ("us", "ca", "mx")',
    'FILTER email LIKE "*@gmail.com"',
    'FILTER NOT plan == "free"',
    'FILTER OR (score > 90, plan == "vip")',
    "FILTER timewindow(visit, 5, 30)",
    "FILTER age BETWEEN 18 AND 35",
    'FILTER tags INTERSECTS ("a", "b")',
    'FILTER AND (country == "us", score < 10)',
    "FILTER EXISTS phone",
    'FILTER signup > "now-30d"',
    'FILTER tolower(name) == "bob"',
    "FILTER timewindow(purchase, 1, 1)",
    'FILTER AND (plan == "pro", timewindow(visit, 1, 7))',
    "FILTER value >= 100",
    'FILTER AND (country == "de", age > 40, NOT plan == "free")',
]


def make_event(rng: random.Random, now: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "user_id": f"user{rng.randrange(USERS):06d}",
        "event": rng.choice(("visit", "visit", "purchase", "view")),
        "probe": time.time_ns(),
    }
    k = rng.random()
    if k < 0.25:
        event["score"] = rng.randrange(100)
    elif k < 0.4:
        event["plan"] = rng.choice(("free", "pro", "vip"))
    elif k < 0.5:
        event["email"] = f"u{rng.randrange(10**6)}@{rng.choice(('gmail.com', 'example.com'))}"
    elif k < 0.6:
        event["last_seen"] = format_rfc3339(now - rng.randrange(10) * NS_PER_DAY)
    elif k < 0.7:
        event["country"] = rng.choice(("us", "ca", "de", "fr"))
    elif k < 0.8:
        event["age"] = rng.randrange(16, 70)
    return event


def generate(
    stack: Stack, rate: int, seconds: float, rng: random.Random, step: float = 0.02
) -> int:
    """Ingest at ``rate`` events/s in ``step`` s steps (a write each); returns events sent."""
    ingestor = Ingestor(stack.engine)
    sent = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(rate * (elapsed + step)) - sent
        if due > 0:
            now = time.time_ns()
            batch = [make_event(rng, now) for _ in range(due)]
            for ev in batch:
                ev["probe"] = time.time_ns()
            for first in range(0, due, 5000):  # a write takes at most 10,000 (all-or-nothing)
                ingestor.ingest(list_items(batch[first : first + 5000]))
            sent += due
        pause = start + (sent / rate) - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return sent


def pending(stack: Stack) -> int:
    e = stack.engine
    pipe = e.r.pipeline(transaction=False)
    for shard in range(e.cfg.shards):
        pipe.xlen(e.keys.events(shard))
    return int(sum(pipe.execute()))


def latencies(stack: Stack, after_seq: int) -> tuple[list[float], list[float]]:
    """ms from the probe (accepted) to the hub's receipt for messages after ``after_seq``, and
    the part of it spent before the drain evaluated the event (``meta.timestamp``)."""
    assert stack.hub is not None
    out: list[float] = []
    to_drain: list[float] = []
    seq = after_seq
    while True:
        page = requests.get(
            f"{stack.hub.base_url}/_emulator/hubs/{stack.hub.hub}/events",
            params={"after": seq, "limit": 20000},
            timeout=30,
        ).json()["events"]
        if not page:
            return out, to_drain
        for ev in page:
            body = orjson.loads(ev["body"])
            probe = body["data"].get("probe")
            if probe:
                out.append((parse_rfc3339(ev["received_at"]) - probe) / 1e6)
                to_drain.append((parse_rfc3339(body["meta"]["timestamp"]) - probe) / 1e6)
        seq = page[-1]["seq"]


def measure(
    stack: Stack, rate: int, seconds: float, rng: random.Random, step: float
) -> dict[str, float]:
    hub_before = requests.get(f"{stack.hub.base_url}/_emulator/stats", timeout=10).json()  # type: ignore[union-attr]
    meter = CpuMeter(stack.pids())
    counted = drain_counters(stack)
    start = time.perf_counter()
    sent = generate(stack, rate, seconds, rng, step)
    backlog_at_end = pending(stack)
    while pending(stack) and time.perf_counter() - start < seconds + 120:
        time.sleep(0.05)
    drained_at = time.perf_counter() - start
    time.sleep(1.0)  # the last deliveries
    # The CPU is read before the messages are read back from the hub for their latencies: that
    # read-back (the stand-in serving every message, this process parsing them) is the bench's.
    cpu_report = meter.report()
    cpu = meter.seconds()
    lat, to_drain = latencies(stack, hub_before["last_seq"])
    entries, batches = (b - a for a, b in zip(counted, drain_counters(stack), strict=True))
    workers = sum(used for name, used in cpu.items() if name.startswith("bench"))
    return {
        "sent": sent,
        "offered": sent / seconds,
        "sustained": sent / max(drained_at, seconds),
        "backlog_at_end": backlog_at_end,
        "p50": percentile(lat, 0.5),
        "p95": percentile(lat, 0.95),
        "p99": percentile(lat, 0.99),
        "messages": len(lat),
        "drain_p50": percentile(to_drain, 0.5),
        "drain_p99": percentile(to_drain, 0.99),
        "cpu": cpu_report,  # type: ignore[dict-item]
        "per_batch": entries / max(batches, 1),
        "worker_us": workers / max(sent, 1) * 1e6,
        "all_us": sum(cpu.values()) / max(sent, 1) * 1e6,
    }


def drain_counters(stack: Stack) -> tuple[int, int]:
    """(entries drained, drain batches) so far, from the engine's counters."""
    e = stack.engine
    got = e.r.hmget(e.keys.metrics, ["entries_drained", "drain_batches"])
    return int(got[0] or 0), int(got[1] or 0)


def where_time_goes(stack: Stack, rng: random.Random, events: int = 30_000) -> None:
    e = stack.engine
    now = time.time_ns()
    for first in range(0, events, 5000):  # one write takes at most 10,000 (all-or-nothing)
        batch = [make_event(rng, now) for _ in range(min(5000, events - first))]
        Ingestor(e).ingest(list_items(batch))
    profiler = cProfile.Profile()
    drainer = ShardDrainer(e)
    start = time.perf_counter()
    profiler.enable()
    for shard in range(e.cfg.shards):
        drainer.drain(shard, budget_s=120)
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    groups = {
        "Redis round trips (read, commit script)": ("redis/", "hiredis", "socket"),
        "audience evaluation (FilterQL)": ("filterql/",),
        "rendering messages": ("envelope.py", "timefmt.py"),
        "profiles (decode, merge, encode)": ("profile.py", "entries.py", "orjson"),
    }
    spent = dict.fromkeys(groups, 0.0)
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        for group, needles in groups.items():
            if any(n in filename or n in name for n in needles):
                spent[group] += row[2]  # tottime
                break
    print(f"\nin-process drain of {events:,} events: {events / total:,.0f} events/s on one core")
    for group, seconds in spent.items():
        print(f"  {group:<42} {seconds / total:5.0%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--rates", default="2000,10000,20000,25000", help="events/s offered, in turn"
    )
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument(
        "--shards-per-drain",
        type=int,
        default=4,
        help="AUDIENCEHUB_SHARDS_PER_DRAIN (1: a drain task per shard, as before drain groups)",
    )
    parser.add_argument(
        "--step-ms",
        type=float,
        default=20,
        help="ms between writes (2: events arriving a request at a time, as single-event "
        "clients send them)",
    )
    parser.add_argument(
        "--kick-interval-ms",
        type=int,
        default=None,
        help="AUDIENCEHUB_DRAIN_KICK_INTERVAL_MS (default: the project's)",
    )
    args = parser.parse_args()
    paced = {}
    if args.kick_interval_ms is not None:
        paced["AUDIENCEHUB_DRAIN_KICK_INTERVAL_MS"] = str(args.kick_interval_ms)
    stack = Stack(
        shards=args.shards, AUDIENCEHUB_SHARDS_PER_DRAIN=str(args.shards_per_drain), **paced
    )
    rng = random.Random(7)
    try:
        hub = stack.start_hub()
        e = stack.engine
        store = AudienceStore(e.r, e.keys)
        for i, text in enumerate(AUDIENCES):
            store.create(f"a{i:02d}", text)
        auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
        create_job(
            e,
            "rt",
            auth.id,
            [f"a{i:02d}" for i in range(20)],
            fields=("_created", "_modified", "email", "user_id", "probe"),
        )
        pacer = e.kicker.pacer
        print(
            f"{len(AUDIENCES)} audiences, {USERS:,} users, job fields include the accept time; "
            f"a write every {args.step_ms:g} ms; drain kicks paced to "
            f"{pacer.interval_s * 1000 if pacer else 0:g} ms"
        )
        for processes in (int(x) for x in args.workers.split(",")):
            stack.start_workers(processes)
            # Warm up: each worker process compiles the audiences and opens its hub session on
            # its first tasks; the figures are for a running system, not a starting one.
            generate(stack, 500, 3, rng)
            time.sleep(1)
            for rate in (int(x) for x in args.rates.split(",")):
                r = measure(stack, rate, args.seconds, rng, args.step_ms / 1000)
                print(
                    f"{processes} worker process(es) @ {rate:>6,}/s offered: "
                    f"sustained {r['sustained']:>8,.0f} events/s, backlog at end {r['backlog_at_end']:>6,.0f}, "
                    f"latency p50 {r['p50']:6.0f} ms p95 {r['p95']:6.0f} ms p99 {r['p99']:6.0f} ms "
                    f"({r['messages']:,.0f} messages; accepted->evaluated p50 {r['drain_p50']:.0f} "
                    f"p99 {r['drain_p99']:.0f} ms)"
                )
                print(f"    {r['cpu']}")
                print(
                    f"    CPU per event: workers {r['worker_us']:.0f} us, every process "
                    f"{r['all_us']:.0f} us (the 2 cores' ceiling: {2e6 / r['all_us']:,.0f} "
                    f"events/s); {r['per_batch']:,.0f} entries per drain batch"
                )
            stack.stop_workers()
        where_time_goes(stack, rng)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
