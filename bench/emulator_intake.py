"""Raw intake of the local hub stand-in: events/s for ~1 MB REST batches of ~400-byte JSON bodies.

Starts ``python -m audiencehub.emulator`` on a free port, then posts pre-built batches (SAS token,
partition key per event, an idempotency property, like the real senders: each batch to the one
partition its users' keys hash to) from 1 and then 2 client processes for a few seconds each.
Prints figures; asserts nothing.

``measure()`` is importable so other benchmarks can report their rate against the stand-in's raw
intake in the same run.

    .venv/bin/python bench/emulator_intake.py [--seconds 6] [--batch-bytes 1000000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import orjson
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _common import sample_message, start_bench_hub  # noqa: E402

from workers.delivery.eventhub.connstr import ConnectionString, parse_connection_string  # noqa: E402
from workers.delivery.eventhub.partitions import partition_for_key  # noqa: E402
from workers.delivery.eventhub.sas import make_token  # noqa: E402

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"


@dataclass(frozen=True)
class IntakeResult:
    clients: int
    seconds: float
    events: int
    requests: int
    bytes_sent: int
    p50_ms: float
    p99_ms: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def line(self) -> str:
        return (
            f"{self.clients} client(s): {self.events_per_s:>9,.0f} events/s  "
            f"{self.bytes_sent / self.seconds / 1e6:6.1f} MB/s  "
            f"{self.requests / self.seconds:6.1f} batches/s  "
            f"latency p50 {self.p50_ms:.1f} ms  p99 {self.p99_ms:.1f} ms"
        )


def build_batches(
    count: int, batch_bytes: int, seed: int, partitions: int = 4
) -> tuple[list[bytes], list[int], list[str]]:
    """``count`` distinct batch bodies of at most ``batch_bytes`` each, their event counts and
    the partition each goes to (every key in a batch hashes to it, as the senders group them)."""
    rng = random.Random(seed)
    ids = [str(i) for i in range(partitions)]
    bodies: list[bytes] = []
    sizes: list[int] = []
    targets: list[str] = []
    for n in range(count):
        target = ids[n % partitions]
        items: list[bytes] = []
        size = 2
        while True:
            user = f"user-{rng.randrange(50_000)}"
            if partition_for_key(user, ids) != target:
                continue
            item = orjson.dumps(
                {
                    "Body": sample_message(rng, user, len(items)).decode(),
                    "UserProperties": {"idempotency_key": f"{rng.getrandbits(96):024x}"},
                    "BrokerProperties": {"PartitionKey": user},
                }
            )
            if size + len(item) + 1 > batch_bytes:
                break
            items.append(item)
            size += len(item) + 1
        bodies.append(b"[" + b",".join(items) + b"]")
        sizes.append(len(items))
        targets.append(target)
    return bodies, sizes, targets


def _client(
    base: str,
    token: str,
    batch_bytes: int,
    seconds: float,
    seed: int,
    partitions: int,
    out: Queue[Any],
) -> None:
    bodies, sizes, targets = build_batches(4, batch_bytes, seed, partitions)
    urls = [f"{base}/partitions/{t}/messages?timeout=60&api-version=2014-01" for t in targets]
    session = requests.Session()
    headers = {"Authorization": token, "Content-Type": BATCH_CONTENT_TYPE}
    events = sent = n = 0
    latencies: list[float] = []
    out.put("ready")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        i = n % len(bodies)
        start = time.perf_counter()
        resp = session.post(urls[i], data=bodies[i], headers=headers, timeout=30)
        latencies.append(time.perf_counter() - start)
        n += 1
        if resp.status_code == 201:
            events += sizes[i]
            sent += len(bodies[i])
    out.put((events, n, sent, latencies))


def measure(
    conn: ConnectionString,
    clients: int,
    seconds: float = 6.0,
    batch_bytes: int = 1_000_000,
    partitions: int = 4,
) -> IntakeResult:
    """Post pre-built batches from ``clients`` processes for ``seconds``; events accepted per s.
    ``partitions``: the hub's partition count (each batch goes to one of them)."""
    token = make_token(conn.resource_uri, conn.key_name, conn.key, int(time.time()) + 3600)
    ctx = mp.get_context("fork")
    queue: Queue[Any] = ctx.Queue()
    procs = [
        ctx.Process(
            target=_client,
            args=(conn.rest_base, token, batch_bytes, seconds, 1000 + i, partitions, queue),
        )
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        queue.get(timeout=60)  # each client has built its batches
    started = time.perf_counter()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    elapsed = max(seconds, time.perf_counter() - started)
    for proc in procs:
        proc.join(timeout=10)
    latencies = sorted(x for r in results for x in r[3])
    pct = (
        (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000)
        if latencies
        else (lambda q: 0.0)
    )
    return IntakeResult(
        clients=clients,
        seconds=elapsed,
        events=sum(r[0] for r in results),
        requests=sum(r[1] for r in results),
        bytes_sent=sum(r[2] for r in results),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch-bytes", type=int, default=1_000_000)
    args = parser.parse_args()
    hub = start_bench_hub()
    conn = parse_connection_string(hub.connection_string)
    base = hub.base_url
    try:
        sample, counts, _ = build_batches(1, args.batch_bytes, 1)
        body_len = len(orjson.loads(sample[0])[0]["Body"])
        print(
            f"hub stand-in intake, {os.cpu_count()} CPU(s): batches of {len(sample[0]):,} bytes "
            f"holding {counts[0]} events ({body_len}-byte JSON bodies, "
            f"~{len(sample[0]) // counts[0]} bytes per entry with properties)"
        )
        for clients in (1, 2):
            requests.delete(f"{base}/_emulator/events", timeout=10)
            result = measure(conn, clients, args.seconds, args.batch_bytes)
            stats = requests.get(f"{base}/_emulator/stats", timeout=10).json()
            print(result.line() + f"  (stand-in counted {stats['events']:,} events)")
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
