"""Shard entries set aside: what a drain would not apply, kept with the reason; and the attempts
that decide when an entry is set aside.

A shard applies its entries in order, so one entry that cannot be applied would hold every user of
the shard behind it. Two kinds are set aside instead, in the same atomic commit that moves the
shard on (nothing lost, nothing applied twice):

- an event a profile limit refuses (too many fields or bytes for its profile), at once;
- an entry whose drains failed or timed out ``max_attempts`` times in a row: before a batch is
  worked, its first entry's attempt is written down; any commit clears it, so an attempt still
  there on the next drain did not commit (an exception, a time limit, a killed worker). A repeat
  attempt drains that entry alone, so a poison entry is told apart from a slow batch. A batch
  that takes several shards at once (a drain group's) writes its attempts down uncounted: a
  worker killed during it cannot say whose entry it was, so each of those shards then drains
  its first entry alone, counted, before any is set aside.

The payload is kept so an operator can read the entry and send it again once the cause is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from workers.engine import Engine
from workers.redisconn import stream_rows
from workers.timefmt import NS_PER_MS, format_rfc3339

LIMIT, FAILED, TIMED_OUT = "limit", "failed", "timed_out"
"""Kinds of reason (the metric's label); the full reason is kept with each entry."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """The head entry of a shard, how many drains of it began without committing, and why the
    last one stopped when it could say (a killed process says nothing)."""

    entry_id: str
    count: int
    why: str = ""
    shared: bool = False
    """Begun in a batch with other shards' entries: not counted (``count`` is the attempts
    before it), but the next drain of the shard takes the entry alone."""

    def encode(self) -> bytes:
        d: dict[str, Any] = {"id": self.entry_id, "n": self.count, "why": self.why}
        if self.shared:
            d["shared"] = True
        return orjson.dumps(d)

    @classmethod
    def decode(cls, raw: Any) -> Attempt | None:
        if not raw:
            return None
        d = orjson.loads(raw)
        return cls(d["id"], int(d["n"]), d.get("why", ""), bool(d.get("shared")))


class DrainAttempts:
    """Owner of ``p:{sk}:drain:attempts`` (one per shard; commit.lua clears it)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def key(self, shard: int) -> str:
        return self.e.keys.drain_attempts(shard)

    def begin(self, shard: int, attempt: Attempt, pipe: Any = None) -> None:
        """Write the attempt down; into ``pipe`` when given (the caller executes it)."""
        (self.e.r if pipe is None else pipe).set(self.key(shard), attempt.encode())

    def stopped(self, shard: int, attempt: Attempt, why: str) -> None:
        """Say why an attempt ended without a commit (best effort: it is already counted)."""
        stopped = Attempt(attempt.entry_id, attempt.count, why, attempt.shared)
        self.e.r.set(self.key(shard), stopped.encode())

    def forget(self, shards: list[int]) -> None:
        """The state store failed, not the entries: do not count these attempts against them."""
        pipe = self.e.r.pipeline(transaction=False)  # one key per shard: each its own slot
        for shard in shards:
            pipe.delete(self.key(shard))
        pipe.execute()


@dataclass(frozen=True, slots=True)
class SetAside:
    shard: int
    id: str
    entry_id: str
    reason: str
    at: str
    payload: bytes


class ShardDeadLetters:
    """Owner of ``p:{sk}:dead``: entries set aside, per shard (written by the shard commit)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def counts(self) -> dict[int, int]:
        """Entries set aside, by shard (shards with none left out)."""
        e = self.e
        pipe = e.r.pipeline(transaction=False)
        for shard in range(e.cfg.shards):
            pipe.xlen(e.keys.shard_dead(shard))
        return {s: int(n) for s, n in enumerate(pipe.execute()) if n}

    def entries(self, shard: int, count: int = 100) -> list[SetAside]:
        rows = stream_rows(self.e.r.xrevrange(self.e.keys.shard_dead(shard), count=count))
        return [
            SetAside(
                shard,
                entry_id.decode(),
                f[b"id"].decode(),
                f[b"why"].decode(),
                format_rfc3339(int(f[b"at"]) * NS_PER_MS),
                f[b"d"],
            )
            for entry_id, f in rows
        ]

    def latest(self, count: int = 5) -> list[SetAside]:
        """The newest entries set aside across shards, newest first."""
        found: list[SetAside] = []
        for shard in self.counts():
            found += self.entries(shard, count)
        found.sort(key=lambda x: tuple(int(p) for p in x.id.split("-")), reverse=True)
        return found[:count]
