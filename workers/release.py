"""Releasing due users: hand each user whose answer can flip now to its shard as a re-evaluation.

One script per shard takes the due users out of the due index and appends a re-evaluation entry
for each to the shard's stream, atomically: two beats running by mistake can never release a
user twice, and a crash cannot lose one (it is either still due or already in the stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from workers.engine import Engine
from workers.timefmt import NS_PER_MS

LATENESS_SAMPLES = 1000


def _lateness_key(engine: Engine) -> str:
    return f"{engine.keys.prefix}:stats:lateness"


def record_lateness(engine: Engine, samples_ms: list[int], pipe: Any) -> None:
    """Keep the latest lateness samples (flip instant -> re-evaluation committed), in ms."""
    pipe.lpush(_lateness_key(engine), *samples_ms)
    pipe.ltrim(_lateness_key(engine), 0, LATENESS_SAMPLES - 1)


_RELEASE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
if #due == 0 then return {} end
local released = {}
for i = 1, #due, 2 do
  local uid = due[i]
  redis.call('XADD', KEYS[2], '*', 'd', cjson.encode({k = 'r', u = uid}))
  released[#released + 1] = due[i + 1]
end
for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
return released
"""


@dataclass
class ReleaseReport:
    released: int = 0
    shards: int = 0
    worst_lateness_ms: int = 0


class Releaser:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._script = engine.r.register_script(_RELEASE)

    def release(self, limit: int = 10_000) -> ReleaseReport:
        """Release every due user (at most ``limit`` per shard per call) and wake their shards."""
        e = self.e
        now_ms = e.clock.now_ns() // NS_PER_MS
        report = ReleaseReport()
        woken: list[int] = []
        for shard in range(e.cfg.shards):
            scores = self._script(
                keys=[e.keys.due(shard), e.keys.events(shard)], args=[now_ms, limit]
            )
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
    for shard in range(e.cfg.shards):
        pipe.zcard(e.keys.due(shard))
        pipe.zrange(e.keys.due(shard), 0, 0, withscores=True)
    pipe.lrange(_lateness_key(e), 0, -1)
    answers = pipe.execute()
    samples = cast(list[bytes], answers.pop())
    counts = answers[0::2]
    firsts = [int(a[0][1]) for a in answers[1::2] if a]
    return DueStats(sum(counts), min(firsts) if firsts else None, [int(x) for x in samples])
