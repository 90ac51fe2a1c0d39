"""Dead letters: messages the hub refused for good, kept with the reason, replayable.

A replayed message goes to the end of its user's outbox: it is sent after anything that user
triggered since, so a consumer should order a user's messages by ``meta.timestamp``.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.engine import Engine
from workers.keys import shard_of
from workers.redisconn import stream_rows
from workers.timefmt import format_rfc3339


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    user_id: str
    idempotency_key: str
    reason: str
    at: str
    body: bytes


class DeadLetters:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def entries(self, job_id: str, count: int = 1000) -> list[DeadLetter]:
        rows = stream_rows(self.e.r.xrange(self.e.keys.job_dead(job_id), count=count))
        return [
            DeadLetter(
                entry_id.decode(),
                f[b"u"].decode(),
                f[b"k"].decode(),
                f[b"reason"].decode(),
                format_rfc3339(int(f[b"at"])),
                f[b"b"],
            )
            for entry_id, f in rows
        ]

    def replay(self, job_id: str, ids: list[str] | None = None) -> int:
        """Put dead letters (all, or those ``ids``) back into their outboxes; returns how many."""
        e = self.e
        key = e.keys.job_dead(job_id)
        if ids is None:
            rows = stream_rows(e.r.xrange(key))
        else:
            rows = []
            for wanted in ids:
                rows += stream_rows(e.r.xrange(key, min=wanted, max=wanted))
        shards: set[int] = set()
        # Not one transaction (outboxes live in other cluster slots): XADD before XDEL, so a
        # crash in between leaves a duplicate, never a loss.
        pipe = e.r.pipeline(transaction=False)
        for entry_id, f in rows:
            shard = shard_of(f[b"u"].decode(), e.cfg.shards)
            shards.add(shard)
            pipe.xadd(e.keys.outbox(shard, job_id), {"u": f[b"u"], "k": f[b"k"], "b": f[b"b"]})
            pipe.xdel(key, entry_id)
        pipe.execute()
        if shards:
            e.kicker.delivers([job_id])
        return len(rows)

    def count(self, job_id: str) -> int:
        return int(self.e.r.xlen(self.e.keys.job_dead(job_id)))
