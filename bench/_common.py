"""What the benchmarks share: a private stack of real processes, and reporting helpers.

Figures are printed, never asserted: machines here are noisy, so each benchmark reports a
baseline measured in the same run next to its own figure.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from audiencehub.processes import (  # noqa: E402
    CeleryBeat,
    CeleryWorker,
    HubEmulator,
    Managed,
    RedisServer,
    celery_env,
)
from workers.config import Settings, load_settings  # noqa: E402
from workers.engine import Engine  # noqa: E402


@contextmanager
def private_redis(name: str, shards: int) -> Iterator[tuple[Settings, redis.Redis]]:
    """A redis-server of this run's own (no AOF), the environment pointed at it in demo mode
    with ``shards`` shards, and the settings and a client for it; stopped on the way out."""
    server = RedisServer(
        Path(tempfile.mkdtemp(prefix=f"audiencehub-bench-{name}-")), appendonly=False
    )
    server.start()
    try:
        os.environ.update(
            {"REDIS_URL": server.url, "AUDIENCEHUB_MODE": "demo", "AUDIENCEHUB_SHARDS": str(shards)}
        )
        yield load_settings(), redis.Redis.from_url(server.url)
    finally:
        server.stop()


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes on the wall clock."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children, the largest one, in MB."""
    pids = [pid]
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    pids += [int(p) for p in out.stdout.split()]
    peak = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def _tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [pid, *(int(p) for p in out.stdout.split())]


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User+system CPU seconds used so far by a process (and its direct children)."""
    total = 0
    for p in _tree(pid) if children else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per named process over a window: where the time went."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = {name: self._cpu(name) for name in pids}
        self.t0 = time.perf_counter()

    def _cpu(self, name: str) -> float:
        return cpu_seconds(self.pids[name], children=name != "this process")

    def seconds(self) -> dict[str, float]:
        """CPU seconds used by each named process since the meter was made."""
        return {name: self._cpu(name) - self.start[name] for name in self.pids}

    def report(self) -> str:
        wall = time.perf_counter() - self.t0
        parts = [f"{name} {used:.1f}s" for name, used in self.seconds().items()]
        return f"CPU over {wall:.1f}s wall (2 cores = {2 * wall:.1f}s): " + ", ".join(parts)


def start_bench_hub() -> HubEmulator:
    """The hub stand-in alone (hub ``bench``, 4 partitions), for the transport benchmarks.

    Intake runs send millions of events: the stand-in forgets the oldest beyond its bound
    instead of refusing, so a long run measures intake, not a full hub.
    """
    hub = HubEmulator(
        Path(tempfile.mkdtemp(prefix="audiencehub-bench-hub-")),
        hub="bench",
        extra=["--partitions", "4", "--log-level", "warning", "--when-full", "drop-oldest"],
    )
    hub.start()
    return hub


class Stack:
    """redis-server, the hub stand-in, N worker processes and beat, all private to one run."""

    def __init__(self, shards: int = 16, mode: str = "demo", **env: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="audiencehub-bench-"))
        self.redis = RedisServer(self.workdir, appendonly=False)
        self.redis.start()
        self.env = celery_env(
            self.redis.url, AUDIENCEHUB_MODE=mode, AUDIENCEHUB_SHARDS=str(shards), **env
        )
        os.environ.update(
            {k: v for k, v in self.env.items() if k.startswith(("AUDIENCEHUB", "REDIS"))}
        )
        self.cfg: Settings = load_settings()
        from tasks.app import make_app
        from tasks.sender import CeleryTaskSender

        self.engine = Engine.create(
            CeleryTaskSender(make_app(self.redis.url)),
            cfg=self.cfg,
            r=redis.Redis.from_url(self.redis.url),
        )
        self.hub: HubEmulator | None = None
        self.procs: list[Managed] = []

    def start_hub(self, *extra: str) -> HubEmulator:
        self.hub = HubEmulator(
            self.workdir, extra=["--max-events", "5000000", "--when-full", "drop-oldest", *extra]
        )
        self.hub.start()
        return self.hub

    def start_workers(self, processes: int, beat: bool = True, queues: str | None = None) -> None:
        kwargs: dict[str, Any] = {"concurrency": processes}
        if queues:
            kwargs["queues"] = queues
        worker = CeleryWorker(self.workdir, self.env, name=f"bench{len(self.procs)}", **kwargs)
        worker.start()
        self.procs.append(worker)
        if beat:
            b = CeleryBeat(self.workdir, self.env)
            b.start()
            self.procs.append(b)

    def stop_workers(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def pids(self) -> dict[str, int]:
        """Every process of the stack by role, for CpuMeter."""
        named = {"redis": self.redis.proc.pid if self.redis.proc else 0}
        if self.hub is not None and self.hub.proc is not None:
            named["hub"] = self.hub.proc.pid
        for proc in self.procs:
            if proc.proc is not None:
                named[proc.name] = proc.proc.pid
        named["this process"] = os.getpid()
        return named

    def hub_count(self) -> int:
        assert self.hub is not None
        import requests

        stats = requests.get(f"{self.hub.base_url}/_emulator/stats", timeout=10).json()
        return int(sum(h["events"] for h in stats["hubs"].values()))

    def close(self) -> None:
        self.stop_workers()
        if self.hub is not None:
            self.hub.stop()
        self.redis.stop()


def sample_message(rng: random.Random, user: str, n: int) -> bytes:
    """A ~400-byte trigger message shaped like the real one (data + meta), for the hub benches."""
    return orjson.dumps(
        {
            "data": {
                "_created": "2024-05-01T10:00:00Z",
                "_modified": "2024-05-02T11:30:00.123456789Z",
                "email": f"{user}@example.com",
                "user_id": user,
                "segment_events": [
                    {
                        "id": f"{rng.getrandbits(128):032x}",
                        "event": "enter" if n % 2 else "exit",
                        "enter": "2024-05-02T11:30:00Z",
                        "exit": "2099-05-02T11:30:00Z",
                        "slug": "high-value-customers",
                    }
                ],
            },
            "meta": {
                "object": "user",
                "subscription_id": f"{rng.getrandbits(128):032x}",
                "timestamp": "2024-05-02T11:30:00.5Z",
            },
        }
    )
