"""Delivery: sustained messages/s from outboxes to the hub stand-in, REST per partition (1, 4 and
32 partitions, and with the partition count unknown: one user per request) and AMQP, with and
without 20 % of requests throttled, against the stand-in's raw intake in the same run.

One process delivers (the figure is per worker process). Outboxes are filled with rendered
~430-byte messages for 20,000 users over 16 shards; the clock runs from the first send to the
last ack. The 1-partition hub is the baseline: one request per round, what a round cost when it
was one mixed batch to /{hub}/messages; it runs first and again last, so drift in the machine's
load shows. The stand-in forgets what it stored before each run. Prints figures; asserts nothing.

    .venv/bin/python bench/delivery.py [--messages 200000] [--fallback-messages 20000]
                                       [--amqp-messages 40000]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests
from _common import CpuMeter, Stack
from emulator_intake import measure

from audiencehub.processes import HubEmulator
from workers.delivery.deliver import Deliverer, SenderPool
from workers.delivery.eventhub.connstr import parse_connection_string
from workers.delivery.hub_partitions import HubPartitions
from workers.delivery.outbox import Outbox, OutboxRecord
from workers.jobs.auths import AuthStore
from workers.jobs.health import JobHealth
from workers.jobs.setup import create_job
from workers.keys import shard_of

BODY = (
    '{"data":{"_created":"2026-06-29T18:50:16.902758229Z","_modified":"2026-11-18T06:12:36.829Z",'
    '"email":"%s@example.com","user_id":"%s","segment_events":[{"id":"d3d8f15855b6b067709577342f'
    'e72db9","event":"enter","enter":"2026-11-18T06:12:36.829070108Z","exit":"2099-11-18T06:12:36'
    '.829070108Z","slug":"demo_segment"}]},"meta":{"object":"user","subscription_id":"7e2b8804bbe'
    '162cd3f9c0c5991bf3078","timestamp":"2026-11-18T06:12:36.829070108Z"}}'
)


def fill(stack: Stack, job_id: str, count: int) -> None:
    e = stack.engine
    pipe = e.r.pipeline(transaction=False)
    for i in range(count):
        uid = f"user{i % 20000:06d}"
        body = BODY % (uid, uid)
        record = OutboxRecord(uid, f"{i:032x}", body.encode())
        Outbox(e.keys, shard_of(uid, e.cfg.shards), job_id).append(pipe, [record])
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def hub_events(hub: HubEmulator) -> Callable[[], int]:
    def count() -> int:
        stats = requests.get(f"{hub.base_url}/_emulator/stats", timeout=10).json()
        return int(sum(h["events"] for h in stats["hubs"].values()))

    return count


def run(
    stack: Stack, job_id: str, count: int, pool: SenderPool, at_hub: Callable[[], int]
) -> tuple[float, int, int]:
    """Deliver until the hub has ``count`` more; returns (seconds, failed attempts, requests)."""
    e = stack.engine
    deliverer = Deliverer(e, pool.get)
    health = JobHealth(e.r, e.keys)
    target = at_hub() + count
    failures = batches = 0
    start = time.perf_counter()
    while at_hub() < target:
        report = deliverer.deliver(job_id, budget_s=30)
        failures += bool(report.error)
        batches += report.batches
        wait = (health.get(job_id).retry_at - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)  # sleeping: the sweep would wake the job when the backoff ends
        if time.perf_counter() - start > 600:
            raise TimeoutError("delivery did not finish")
    took = time.perf_counter() - start
    deliverer.close()
    return took, failures, batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--fallback-messages", type=int, default=20_000)
    parser.add_argument("--amqp-messages", type=int, default=40_000)
    args = parser.parse_args()
    stack = Stack(shards=16)
    rest_only = HubEmulator(
        Path(tempfile.mkdtemp(prefix="audiencehub-bench-hub-")),
        extra=["--no-amqp", "--max-events", "5000000", "--log-level", "warning"],
    )
    try:
        hub = stack.start_hub("--log-level", "warning")
        rest_only.start()
        for name, partitions in (("p1", 1), ("p32", 32)):
            requests.put(
                f"{hub.base_url}/_emulator/hubs/{name}",
                params={"partitions": partitions},
                timeout=5,
            ).raise_for_status()
        raw = measure(parse_connection_string(hub.connection_string), clients=1, seconds=4)
        print(f"stand-in raw intake (1 client): {raw.events_per_s:>9,.0f} msg/s")
        e = stack.engine
        auths = AuthStore(e.r, e.keys, e.cfg)
        on = {
            "audiences": auths.create("hub4", hub.connection_string).id,
            "p1": auths.create("hub1", hub.connection_string.replace("=audiences;", "=p1;")).id,
            "p32": auths.create("hub32", hub.connection_string.replace("=audiences;", "=p32;")).id,
            "unknown": auths.create("rest-only", rest_only.connection_string).id,
        }
        e.r.set(e.keys.clock_offset, 0)
        from workers.audiences.store import AudienceStore

        AudienceStore(e.r, e.keys).create("all", "FILTER EXISTS email")
        throttle = {
            "seed": 1,
            "rules": [{"status": 503, "share": 0.2, "retry_after": 0, "face": "rest"}],
        }
        plans: list[tuple[str, str, str, int, object]] = [
            ("REST, 1 partition (baseline)", "rest", "p1", args.messages, None),
            ("REST, 4 partitions", "rest", "audiences", args.messages, None),
            ("REST, 32 partitions", "rest", "p32", args.messages, None),
            ("REST, 32 partitions, 20% throttled", "rest", "p32", args.messages // 2, throttle),
            (
                "REST, count unknown: one user per request",
                "rest",
                "unknown",
                args.fallback_messages,
                None,
            ),
            ("AMQP (4 partitions)", "amqp", "audiences", args.amqp_messages, None),
            (
                "AMQP, 20% throttled",
                "amqp",
                "audiences",
                args.amqp_messages // 2,
                {
                    "seed": 1,
                    "rules": [
                        {
                            "status": 503,
                            "share": 0.2,
                            "retry_after": 0,
                            "face": "amqp",
                            "op": "send",
                        }
                    ],
                },
            ),
            ("REST, 1 partition (baseline, again)", "rest", "p1", args.messages, None),
        ]
        logging.getLogger("audiencehub").setLevel(logging.ERROR)  # throttling is the point here
        pool = SenderPool(e)
        baseline = 0.0
        for label, transport, target, count, faults in plans:
            job = create_job(e, label, on[target], ["all"], transport=transport)
            server = rest_only if target == "unknown" else hub
            at_hub = hub_events(server)
            requests.delete(f"{server.base_url}/_emulator/faults", timeout=5)
            requests.delete(f"{server.base_url}/_emulator/events", timeout=30)  # same start
            # Warm up: the first send learns the partitions (the management call) and opens the
            # sender's connections; the figure is for a sender that is already running.
            fill(stack, job.id, 500)
            run(stack, job.id, 500, pool, at_hub)
            if faults:
                requests.put(f"{server.base_url}/_emulator/faults", json=faults, timeout=5)
            fill(stack, job.id, count)
            meter = CpuMeter(stack.pids())
            try:
                took, failures, batches = run(stack, job.id, count, pool, at_hub)
            except Exception as exc:  # the AMQP transport may be unavailable
                print(f"{label:<42} not measured: {type(exc).__name__}: {exc}")
                continue
            rate = count / took
            baseline = baseline or rate
            mode = HubPartitions(e.r, e.keys).layout(auths.get(on[target])).mode
            print(
                f"{label:<42} {count:>8,} msgs in {took:6.2f}s = {rate:>9,.0f} msg/s "
                f"({rate / raw.events_per_s:.0%} of raw intake, {rate / baseline:.2f}x the "
                f"1-partition baseline; {batches:,} requests, {count / max(batches, 1):,.0f} "
                f"msgs each; {failures} throttled attempts; {mode})"
            )
            print(f"{'':<42} {meter.report()}")
        requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
        pool.close()
    finally:
        rest_only.stop()
        stack.close()


if __name__ == "__main__":
    main()
