"""Releasing due users: hand each user whose answer can flip now to its shard as a re-evaluation.

One script per shard (``DueIndex.release``) takes the due users out of the due index and appends
a re-evaluation entry for each to the shard's stream, atomically: two beats running by mistake can
never release a user twice, and a crash cannot lose one (it is either still due or already in the
stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from workers.engine import Engine
from workers.schedule.due_index import DueIndex
from workers.timefmt import NS_PER_MS

LATENESS_SAMPLES = 1000


def record_lateness(engine: Engine, samples_ms: list[int], pipe: Any) -> None:
    """Keep the latest lateness samples (flip instant -> re-evaluation committed), in ms."""
    pipe.lpush(engine.keys.lateness, *samples_ms)
    pipe.ltrim(engine.keys.lateness, 0, LATENESS_SAMPLES - 1)


@dataclass
class ReleaseReport:
    released: int = 0
    shards: int = 0
    worst_lateness_ms: int = 0


class Releaser:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def release(self, limit: int = 10_000) -> ReleaseReport:
        """Release every due user (at most ``limit`` per shard per call) and wake their shards."""
        e = self.e
        now_ms = e.clock.now_ns() // NS_PER_MS
        report = ReleaseReport()
        woken: list[int] = []
        indexes = [DueIndex(e.keys, shard) for shard in range(e.cfg.shards)]
        # One pipelined look at every shard, then the release script only where a bucket has
        # started: with many shards and few due users, a tick costs one round trip, not one
        # script call per shard.
        pipe = e.r.pipeline(transaction=False)
        for index in indexes:
            index.started_by(pipe, now_ms)
        started = [shard for shard, first in enumerate(pipe.execute()) if first]
        for shard in started:
            scores = indexes[shard].release(e.r, now_ms, limit)
            if scores:
                woken.append(shard)
                report.released += len(scores)
                oldest = min(int(float(s)) for s in scores)
                report.worst_lateness_ms = max(report.worst_lateness_ms, now_ms - oldest)
        report.shards = len(woken)
        e.kicker.drains(woken)
        return report


@dataclass
class DueStats:
    scheduled: int
    next_due_ms: int | None
    lateness_ms: list[int] = field(default_factory=list)

    def percentile(self, q: float) -> int | None:
        if not self.lateness_ms:
            return None
        ordered = sorted(self.lateness_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def due_stats(engine: Engine) -> DueStats:
    e = engine
    pipe = e.r.pipeline(transaction=False)
    indexes = [DueIndex(e.keys, shard) for shard in range(e.cfg.shards)]
    for index in indexes:
        index.count(pipe)
        index.first_bucket(pipe)
    pipe.lrange(e.keys.lateness, 0, -1)
    answers = pipe.execute()
    samples = cast(list[bytes], answers.pop())
    counts = [int(c or 0) for c in answers[0::2]]
    pipe = e.r.pipeline(transaction=False)
    for index, first in zip(indexes, answers[1::2], strict=True):
        if first:
            index.bucket_times(pipe, int(first[0]))
    firsts = [min(int(v) for v in vals) for vals in pipe.execute() if vals]
    return DueStats(sum(counts), min(firsts) if firsts else None, [int(x) for x in samples])


def due_entries(engine: Engine, shard: int) -> dict[str, int]:
    """Every user in a shard's due index with its due time (ms); for tests and inspection."""
    return DueIndex(engine.keys, shard).entries(engine.r)
