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


def record_lateness(engine: Engine, samples_ms: list[int], pipe: Any) -> None:
    """Keep the latest lateness samples (flip instant -> re-evaluation committed), in ms."""
    pipe.lpush(engine.keys.lateness, *samples_ms)
    pipe.ltrim(engine.keys.lateness, 0, LATENESS_SAMPLES - 1)


_RELEASE = """
-- KEYS[1] due index (zset of buckets), KEYS[2] due count, KEYS[3] the shard's stream
-- ARGV[1] now (ms), ARGV[2] most users to release
local released = {}
local limit = tonumber(ARGV[2])
local now = tonumber(ARGV[1])
local buckets = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, bucket in ipairs(buckets) do
  local key = KEYS[1] .. ':' .. bucket
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    if #released >= limit then break end
    local due = tonumber(entries[i + 1])
    if due <= now then
      redis.call('XADD', KEYS[3], '*', 'd', cjson.encode({k = 'r', u = entries[i]}))
      redis.call('HDEL', key, entries[i])
      released[#released + 1] = entries[i + 1]
    end
  end
  if redis.call('HLEN', key) == 0 then redis.call('ZREM', KEYS[1], bucket) end
  if #released >= limit then break end
end
if #released > 0 then redis.call('DECRBY', KEYS[2], #released) end
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
                keys=[e.keys.due(shard), e.keys.due_count(shard), e.keys.events(shard)],
                args=[now_ms, limit],
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
        pipe.get(e.keys.due_count(shard))
        pipe.zrange(e.keys.due(shard), 0, 0)
    pipe.lrange(e.keys.lateness, 0, -1)
    answers = pipe.execute()
    samples = cast(list[bytes], answers.pop())
    counts = [int(c or 0) for c in answers[0::2]]
    pipe = e.r.pipeline(transaction=False)
    for shard, first in enumerate(answers[1::2]):
        if first:
            pipe.hvals(e.keys.due_bucket(shard, int(first[0])))
    firsts = [min(int(v) for v in vals) for vals in pipe.execute() if vals]
    return DueStats(sum(counts), min(firsts) if firsts else None, [int(x) for x in samples])


def due_entries(engine: Engine, shard: int) -> dict[str, int]:
    """Every user in a shard's due index with its due time (ms); for tests and inspection."""
    e = engine
    buckets = cast(list[bytes], e.r.zrange(e.keys.due(shard), 0, -1))
    out: dict[str, int] = {}
    for bucket in buckets:
        raw = cast(dict[bytes, bytes], e.r.hgetall(e.keys.due_bucket(shard, int(bucket))))
        out.update({k.decode(): int(v) for k, v in raw.items()})
    return out
