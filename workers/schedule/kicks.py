"""Waking drainers and deliverers without flooding the broker.

A kick queues at most one task per drain group of shards (``workers/pipeline/drain_groups.py``;
a flag and a task named by the group's lead shard) or per job: a short-lived flag is set with SET NX and
the task is sent only when the flag was free. The task keeps the flag while it works, so arrivals
meanwhile queue nothing, and clears it just before its last look for more work, so whatever
arrives after that kicks a new task. Beat's sweep re-kicks anything left behind (a flag outlives
a crashed task by at most KICK_TTL_S), so a lost task costs seconds, never data.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from workers.keys import Keys
from workers.pipeline.drain_groups import DrainGroups
from workers.redisconn import Redis
from workers.schedule.pacing import KickPacer

KICK_TTL_S = 10
log = logging.getLogger("audiencehub.kicks")
T = TypeVar("T", int, str, tuple[str, int])


class TaskSender(Protocol):
    """How the engine asks for work without knowing about Celery (``tasks`` implements it)."""

    def drain(self, shard: int) -> None:
        """Queue the drain of ``shard``'s drain group."""

    def deliver(self, job: str) -> None: ...

    def backfill(self, job: str, shard: int) -> None: ...


class Kicker:
    def __init__(
        self,
        r: Redis,
        keys: Keys,
        sender: TaskSender,
        groups: DrainGroups,
        drain_kick_interval_s: float = 0.0,
    ) -> None:
        self._r = r
        self._keys = keys
        self._sender = sender
        self.groups = groups
        self.pacer = (
            KickPacer(drain_kick_interval_s, self._send_drain_tasks)
            if drain_kick_interval_s > 0
            else None
        )
        """Paces the intake's drain kicks (``send_drains``), when an interval is set."""

    def drains(self, shards: Iterable[int]) -> int:
        """Wake the drain groups holding ``shards``."""
        return self._kick(set(self.groups.leads(shards)), self._keys.drain_kick, self._sender.drain)

    def delivers(self, jobs: Iterable[str]) -> int:
        return self._kick(set(jobs), self._keys.deliver_kick, self._sender.deliver)

    def delivers_after(self, jobs: Iterable[str], pipe: Any) -> list[Any]:
        """The flags set after the commands already on ``pipe`` (a drain's counters and its
        next read), in its one round trip, then the tasks sent; returns the pipeline's results
        (an error there is the caller's and is raised, nothing sent)."""
        ordered = sorted(set(jobs))
        flag = self._keys.deliver_kick
        for job in ordered:
            pipe.set(flag(job), 1, nx=True, ex=KICK_TTL_S)
        results: list[Any] = pipe.execute()
        flags = results[len(results) - len(ordered) :]
        fresh = [job for job, new in zip(ordered, flags, strict=True) if new]
        self._send(fresh, flag, self._sender.deliver)
        return results

    def backfills(self, pairs: Iterable[tuple[str, int]]) -> int:
        return self._kick(
            set(pairs),
            lambda p: self._keys.backfill_kick(p[1], p[0]),
            lambda p: self._sender.backfill(*p),
        )

    def send_drains(self, shards: list[int]) -> int:
        """Queue a drain for each group whose kick flag the caller has just set, named by a
        shard of it (the intake script sets them in its own call, so a request costs one round
        trip; it sets a group's flag once however many of its shards the request wrote).
        Paced (``workers/schedule/pacing.py``) when an interval is set: then what returns is
        the number of groups kicked or held back."""
        leads = self.groups.leads(shards)
        if self.pacer is None:
            return self._send_drain_tasks(leads)
        self.pacer.submit(leads)
        return len(leads)

    def _send_drain_tasks(self, leads: list[int]) -> int:
        return self._send(leads, self._keys.drain_kick, self._sender.drain)

    def _kick(self, wanted: set[T], flag: Callable[[T], str], send: Callable[[T], None]) -> int:
        """SET NX each flag in one round trip; send a task for each flag that was free.

        Best effort, never raises: the work a kick announces is already durable, and beat's sweep
        finds it within seconds. So a broker (or Redis) that refuses the kick, say because it is
        full, must not turn a stored request into an error its client would retry.
        """
        if not wanted:
            return 0
        ordered = sorted(wanted)
        try:
            pipe = self._r.pipeline(transaction=False)
            for item in ordered:
                pipe.set(flag(item), 1, nx=True, ex=KICK_TTL_S)
            flags = pipe.execute()
        except Exception as exc:  # any client's error: see above
            log.warning("kick skipped, the sweep will find the work: %s", type(exc).__name__)
            return 0
        return self._send([i for i, fresh in zip(ordered, flags, strict=True) if fresh], flag, send)

    def _send(self, items: list[T], flag: Callable[[T], str], send: Callable[[T], None]) -> int:
        """Send a task for each item whose flag was free; a refused send frees its flag again."""
        sent = 0
        for item in items:
            try:
                send(item)
            except Exception as exc:  # the broker refused: free the flag for the next kick
                log.warning("kick not sent, the sweep will find the work: %s", type(exc).__name__)
                with contextlib.suppress(Exception):
                    self._r.delete(flag(item))
                continue
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
