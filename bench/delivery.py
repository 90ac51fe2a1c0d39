"""Delivery: sustained messages/s from outboxes to the hub stand-in, REST and AMQP, with and
without 20 % of requests throttled, against the stand-in's raw intake in the same run.

One process delivers (the figure is per worker process). Outboxes are filled with rendered
~430-byte messages for 20,000 users over 16 shards; the clock runs from the first send to the
last ack. Prints figures; asserts nothing.

    .venv/bin/python bench/delivery.py [--messages 200000] [--amqp-messages 40000]
"""

from __future__ import annotations

import argparse
import logging
import time

import requests
from _common import CpuMeter, Stack
from emulator_intake import measure

from workers.auths import AuthStore
from workers.deliver import Deliverer, SenderPool
from workers.eventhub.connstr import parse_connection_string
from workers.job_health import JobHealth
from workers.job_setup import create_job
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
        pipe.xadd(e.keys.outbox(shard_of(uid, e.cfg.shards), job_id),
                  {"u": uid, "k": f"{i:032x}", "b": body})  # fmt: skip
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def run(stack: Stack, job_id: str, count: int, pool: SenderPool) -> tuple[float, int]:
    """Deliver until the hub has ``count`` more; returns (seconds, failed attempts)."""
    e = stack.engine
    deliverer = Deliverer(e, pool.get)
    health = JobHealth(e.r, e.keys)
    target = stack.hub_count() + count
    failures = 0
    start = time.perf_counter()
    while stack.hub_count() < target:
        report = deliverer.deliver(job_id, budget_s=30)
        failures += bool(report.error)
        wait = (health.get(job_id).retry_at - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)  # sleeping: the sweep would wake the job when the backoff ends
        if time.perf_counter() - start > 600:
            raise TimeoutError("delivery did not finish")
    return time.perf_counter() - start, failures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--amqp-messages", type=int, default=40_000)
    args = parser.parse_args()
    stack = Stack(shards=16)
    try:
        hub = stack.start_hub()
        raw = measure(parse_connection_string(hub.connection_string), clients=1, seconds=4)
        print(f"stand-in raw intake (1 client): {raw.events_per_s:>9,.0f} msg/s")
        e = stack.engine
        auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
        e.r.set(e.keys.clock_offset, 0)
        from workers.audiences import AudienceStore

        AudienceStore(e.r, e.keys).create("all", "FILTER EXISTS email")
        plans: list[tuple[str, str, int, object]] = [
            ("REST", "rest", args.messages, None),
            ("REST, 20% throttled", "rest", args.messages // 2,
             {"seed": 1, "rules": [{"status": 503, "share": 0.2, "retry_after": 0}]}),
            ("AMQP", "amqp", args.amqp_messages, None),
            ("AMQP, 20% throttled", "amqp", args.amqp_messages // 2,
             {"seed": 1, "rules": [{"status": 503, "share": 0.2, "retry_after": 0, "face": "amqp",
                                   "op": "send"}]}),
        ]  # fmt: skip
        logging.getLogger("audiencehub").setLevel(logging.ERROR)  # throttling is the point here
        pool = SenderPool(e)
        for label, transport, count, faults in plans:
            job = create_job(e, label, auth.id, ["all"], transport=transport)
            requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
            if faults:
                requests.put(f"{hub.base_url}/_emulator/faults", json=faults, timeout=5)
            # Warm up: the first send opens the sender's connections (an AMQP client opens one
            # per partition, ~0.4 s each); the figure is for a sender that is already running.
            fill(stack, job.id, 500)
            run(stack, job.id, 500, pool)
            fill(stack, job.id, count)
            meter = CpuMeter(stack.pids())
            try:
                took, failures = run(stack, job.id, count, pool)
            except Exception as exc:  # the AMQP transport may be unavailable
                print(f"{label:<22} not measured: {type(exc).__name__}: {exc}")
                continue
            rate = count / took
            print(
                f"{label:<22} {count:>8,} msgs in {took:6.2f}s = {rate:>9,.0f} msg/s "
                f"({rate / raw.events_per_s:.0%} of raw intake; {failures} throttled attempts)"
            )
            print(f"{'':<22} {meter.report()}")
        requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
        pool.close()
    finally:
        stack.close()


if __name__ == "__main__":
    main()
