"""Dead letters: messages the hub refused for good, kept with the reason, replayable.

A replayed message goes to the end of its user's outbox: it is sent after anything that user
triggered since, so a consumer should order a user's messages by ``meta.timestamp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.delivery.outbox import Outbox, OutboxRecord
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


def add_letter(
    pipe: Any, engine: Engine, job_id: str, record: OutboxRecord, reason: str, at: int, shard: int
) -> None:
    """Queue one dead letter: the outbox record as it was, and why the hub refused it, when."""
    letter = {**record.fields(), "reason": reason, "at": at, "shard": shard}
    pipe.xadd(engine.keys.job_dead(job_id), letter)


class DeadLetters:
    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def entries(self, job_id: str, count: int = 1000) -> list[DeadLetter]:
        rows = stream_rows(self.e.r.xrange(self.e.keys.job_dead(job_id), count=count))
        letters = []
        for entry_id, f in rows:
            record = OutboxRecord.from_fields(f)
            letters.append(
                DeadLetter(
                    entry_id.decode(),
                    record.user,
                    record.key,
                    f[b"reason"].decode(),
                    format_rfc3339(int(f[b"at"])),
                    record.body,
                )
            )
        return letters

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
            record = OutboxRecord.from_fields(f)
            shard = shard_of(record.user, e.cfg.shards)
            shards.add(shard)
            Outbox(e.keys, shard, job_id).append(pipe, [record])
            pipe.xdel(key, entry_id)
        pipe.execute()
        if shards:
            e.kicker.delivers([job_id])
        return len(rows)

    def count(self, job_id: str) -> int:
        return int(self.e.r.xlen(self.e.keys.job_dead(job_id)))
