"""AMQP send rate: messages/s through ``AmqpSender`` into the hub stand-in, from one process.

Starts ``python -m audiencehub.emulator`` (AMQP face on the REST port), then sends ~400-byte JSON
envelopes for 50,000 distinct users the way ``workers.delivery.deliver`` does: each call is packed up to
``--batch-bytes`` by ``encoded_size`` and ``AmqpSender`` splits it into one batch per partition.
For reference it first times ``EventDataBatch.add`` alone (the SDK's per-event cost, which bounds
any AMQP sender), and at the end the CPU each process used. Prints figures; asserts nothing.

    .venv/bin/python bench/amqp_send.py [--seconds 10] [--batch-bytes 1000000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import cpu_seconds, sample_message, start_bench_hub  # noqa: E402
from azure.eventhub import EventData, EventDataBatch  # noqa: E402

from workers.delivery.eventhub.amqp import AmqpSender, amqp_event, encoded_size  # noqa: E402
from workers.delivery.eventhub.connstr import parse_connection_string  # noqa: E402
from workers.delivery.eventhub.sender import OutMessage  # noqa: E402

USERS = 50_000


def build_messages(count: int, seed: int = 7) -> list[OutMessage]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        user = f"user-{rng.randrange(USERS)}"
        out.append(OutMessage(sample_message(rng, user, n), user, f"job-1:{user}:{n:08d}"))
    return out


def pack(messages: list[OutMessage], start: int, limit: int) -> tuple[list[OutMessage], int]:
    """One call's worth, packed like ``workers.delivery.deliver``: 2 + sum(encoded_size) ≤ limit."""
    batch: list[OutMessage] = []
    size = 2
    i = start
    while True:
        message = messages[i % len(messages)]
        item = encoded_size(message)
        if batch and size + item > limit:
            return batch, i
        batch.append(message)
        size += item
        i += 1


def add_cost(messages: list[OutMessage], limit: int) -> tuple[float, float, float, float]:
    """µs per event: EventDataBatch.add of what AmqpSender sends (an AmqpAnnotatedMessage) and of
    the same event as an EventData, then building each."""
    events = [amqp_event(m) for m in messages]
    start = time.perf_counter()
    events = [amqp_event(m) for m in messages]
    build = time.perf_counter() - start

    def fill(items: list[object]) -> float:
        spent = 0.0
        batch = EventDataBatch(max_size_in_bytes=limit, partition_id="0")
        for event in items:
            start = time.perf_counter()
            try:
                batch.add(event)  # type: ignore[arg-type]
            except ValueError:
                batch = EventDataBatch(max_size_in_bytes=limit, partition_id="0")
                batch.add(event)  # type: ignore[arg-type]
            spent += time.perf_counter() - start
        return spent

    plain: list[object] = []
    start = time.perf_counter()
    for m in messages:
        event = EventData(m.body)
        event.properties = {"idempotency_key": m.idempotency_key}
        annotations = event.raw_amqp_message.annotations
        if annotations is not None:  # EventData starts with an empty dict
            annotations[b"x-opt-partition-key"] = m.partition_key
        plain.append(event)
    build_eventdata = time.perf_counter() - start
    # Best of two alternating rounds: the first fills pay for warm-up and collections.
    amqp = min(fill(list(events)) for _ in range(2))
    eventdata = min(fill(plain) for _ in range(2))
    n = len(messages)
    return amqp / n * 1e6, eventdata / n * 1e6, build / n * 1e6, build_eventdata / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch-bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    limit = args.batch_bytes

    messages = build_messages(60_000)
    mean_body = sum(len(m.body) for m in messages) / len(messages)
    start = time.perf_counter()
    for m in messages[:20_000]:
        encoded_size(m)
    size_us = (time.perf_counter() - start) / 20_000 * 1e6
    add_us, eventdata_us, build_us, build_eventdata_us = add_cost(messages[:20_000], limit)
    print(
        f"AMQP send, {os.cpu_count()} CPU(s) (load average {os.getloadavg()[0]:.1f}), "
        f"{mean_body:.0f}-byte JSON bodies, {USERS:,} users, calls packed to {limit:,} bytes"
    )
    print(
        f"reference: EventDataBatch.add {add_us:.1f} µs/event as sent "
        f"(AmqpAnnotatedMessage; the same as EventData: {eventdata_us:.1f} µs), building the "
        f"event {build_us:.1f} µs (EventData: {build_eventdata_us:.1f} µs), "
        f"encoded_size {size_us:.2f} µs"
    )
    print(f"  → the SDK alone caps one process near {1e6 / (add_us + build_us):,.0f} messages/s")

    hub = start_bench_hub()
    conn = parse_connection_string(hub.connection_string)
    base = hub.base_url
    sender = AmqpSender(conn, max_batch_bytes=limit)
    assert hub.proc is not None
    hub_pid = hub.proc.pid
    try:
        started = time.perf_counter()
        first, cursor = pack(messages, 0, limit)
        sender.send(first)  # connects: $management, one link per partition, CBS on each
        print(f"first call (connect, 5 AMQP connections): {time.perf_counter() - started:.2f} s")
        requests.delete(f"{base}/_emulator/events", timeout=10)

        sent = calls = body_bytes = 0
        latencies: list[float] = []
        cpu0, emu0 = time.process_time(), cpu_seconds(hub_pid, children=False)
        t0 = time.perf_counter()
        deadline = t0 + args.seconds
        while time.perf_counter() < deadline:
            batch, cursor = pack(messages, cursor, limit)
            call = time.perf_counter()
            sender.send(batch)
            latencies.append(time.perf_counter() - call)
            sent += len(batch)
            calls += 1
            body_bytes += sum(len(m.body) for m in batch)
        wall = time.perf_counter() - t0
        cpu, emu = time.process_time() - cpu0, cpu_seconds(hub_pid, children=False) - emu0
        stats = requests.get(f"{base}/_emulator/stats", timeout=10).json()
    finally:
        sender.close()
        hub.stop()

    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000
    publications = stats["requests"].get("amqp", {}).get("by_status", {}).get("201", 0)
    print(
        f"AmqpSender: {sent / wall:,.0f} messages/s  {body_bytes / wall / 1e6:.1f} MB/s of bodies  "
        f"{calls / wall:.1f} calls/s ({publications / wall:.1f} publications/s, one per partition)  "
        f"call latency p50 {p50:.0f} ms  p99 {p99:.0f} ms"
    )
    print(
        f"CPU: sender {cpu / wall:.0%} of a core ({cpu / sent * 1e6:.0f} µs/message), "
        f"stand-in {emu / wall:.0%} ({emu / sent * 1e6:.0f} µs/message)"
    )
    print(f"stand-in stored {stats['events']:,} events for {sent:,} sent")


if __name__ == "__main__":
    main()
