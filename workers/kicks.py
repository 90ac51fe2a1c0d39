"""Waking drainers and deliverers without flooding the broker.

A kick queues at most one task per shard (or per job): a short-lived flag is set with SET NX and
the task is sent only when the flag was free. The task keeps the flag while it works, so arrivals
meanwhile queue nothing, and clears it just before its last look for more work, so whatever
arrives after that kicks a new task. Beat's sweep re-kicks anything left behind (a flag outlives
a crashed task by at most KICK_TTL_S), so a lost task costs seconds, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from workers.keys import Keys
from workers.redisconn import Redis

KICK_TTL_S = 10


class TaskSender(Protocol):
    """How the engine asks for work without knowing about Celery (``tasks`` implements it)."""

    def drain(self, shard: int) -> None: ...

    def deliver(self, job: str) -> None: ...

    def backfill(self, job: str, shard: int) -> None: ...


class Kicker:
    def __init__(self, r: Redis, keys: Keys, sender: TaskSender) -> None:
        self._r = r
        self._keys = keys
        self._sender = sender

    def drains(self, shards: Iterable[int]) -> int:
        wanted = sorted(set(shards))
        if not wanted:
            return 0
        pipe = self._r.pipeline(transaction=False)
        for shard in wanted:
            pipe.set(self._keys.drain_kick(shard), 1, nx=True, ex=KICK_TTL_S)
        sent = 0
        for shard, fresh in zip(wanted, pipe.execute(), strict=True):
            if fresh:
                self._sender.drain(shard)
                sent += 1
        return sent

    def delivers(self, jobs: Iterable[str]) -> int:
        wanted = sorted(set(jobs))
        if not wanted:
            return 0
        pipe = self._r.pipeline(transaction=False)
        for job in wanted:
            pipe.set(self._keys.deliver_kick(job), 1, nx=True, ex=KICK_TTL_S)
        sent = 0
        for job, fresh in zip(wanted, pipe.execute(), strict=True):
            if fresh:
                self._sender.deliver(job)
                sent += 1
        return sent

    def backfills(self, pairs: Iterable[tuple[str, int]]) -> int:
        return self._kick_pairs(pairs, self._keys.backfill_kick, self._sender.backfill)

    def _kick_pairs(
        self,
        pairs: Iterable[tuple[str, int]],
        flag: Callable[[int, str], str],
        send: Callable[[str, int], None],
    ) -> int:
        wanted = sorted(set(pairs))
        if not wanted:
            return 0
        pipe = self._r.pipeline(transaction=False)
        for job, shard in wanted:
            pipe.set(flag(shard, job), 1, nx=True, ex=KICK_TTL_S)
        sent = 0
        for (job, shard), fresh in zip(wanted, pipe.execute(), strict=True):
            if fresh:
                send(job, shard)
                sent += 1
        return sent


class NoSender:
    """For tools that write work but leave the waking to beat (and for pure engine tests)."""

    def drain(self, shard: int) -> None:
        pass

    def deliver(self, job: str) -> None:
        pass

    def backfill(self, job: str, shard: int) -> None:
        pass
