"""Waking drainers and deliverers without flooding the broker.

A kick queues at most one task per shard (or per job): a short-lived flag is set with SET NX and
the task is sent only when the flag was free. The task keeps the flag while it works, so arrivals
meanwhile queue nothing, and clears it just before its last look for more work, so whatever
arrives after that kicks a new task. Beat's sweep re-kicks anything left behind (a flag outlives
a crashed task by at most KICK_TTL_S), so a lost task costs seconds, never data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from workers.keys import Keys
from workers.redisconn import Redis

KICK_TTL_S = 10
T = TypeVar("T", int, str, tuple[str, int])


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
        return self._kick(set(shards), self._keys.drain_kick, self._sender.drain)

    def delivers(self, jobs: Iterable[str]) -> int:
        return self._kick(set(jobs), self._keys.deliver_kick, self._sender.deliver)

    def backfills(self, pairs: Iterable[tuple[str, int]]) -> int:
        return self._kick(
            set(pairs),
            lambda p: self._keys.backfill_kick(p[1], p[0]),
            lambda p: self._sender.backfill(*p),
        )

    def _kick(self, wanted: set[T], flag: Callable[[T], str], send: Callable[[T], None]) -> int:
        """SET NX each flag in one round trip; send a task for each flag that was free."""
        if not wanted:
            return 0
        ordered = sorted(wanted)
        pipe = self._r.pipeline(transaction=False)
        for item in ordered:
            pipe.set(flag(item), 1, nx=True, ex=KICK_TTL_S)
        sent = 0
        for item, fresh in zip(ordered, pipe.execute(), strict=True):
            if fresh:
                send(item)
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
