"""The leased, time-budgeted, self-re-queuing loop that drain, deliver and backfill share.

One task at a time works a thing (a shard, a job, a job's shard): it takes the thing's lease,
works until nothing is left or its time budget is spent, lets the lease go, clears its kick flag,
takes one last look, and re-queues itself when work is left but its time is up.

The invariant, written here once: no work is stranded and no tasks pile up.

- The kick flag (``workers/schedule/kicks.py``) stays set while the task works, so work that
  arrives meanwhile queues no second task; the last look sees it.
- The flag is cleared after the lease is let go and before the last look: anything that arrives
  after the clear kicks a new task, anything before it is seen by the look. Cleared later (after
  the look), an arrival between look and clear would be stranded until beat's sweep. Cleared
  earlier (before taking the lease, as backfill once did), every kick during the work queues a
  task that only finds the lease taken.
- A task that finds the lease taken clears the flag and leaves: the holder looks again after it
  lets go, so whatever the task was kicked for is seen.
- A step that raises lets the lease go and clears the flag before the error leaves, so a kick
  sent after it (a retry) queues a task that finds the lease free.
- Over budget with work left, the task re-queues itself (a kick: the flag is set again) instead of
  holding a worker process, so other shards' and jobs' tasks get their turn.

``requeue`` is a callback (the engine's kicker, whose task sender the Celery side passes in), so
this module knows nothing of Celery.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from workers.lease import Lease
from workers.redisconn import Redis

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LeasedLoop:
    r: Redis
    lease_key: str
    lease_ms: int
    kick_key: str
    requeue: Callable[[], object]

    def run(
        self,
        budget_s: float,
        prepare: Callable[[], T | None],
        step: Callable[[T, Lease], bool],
        more: Callable[[], bool],
    ) -> bool:
        """Work until done or out of time; True when it re-queued itself.

        Args:
            budget_s: time to work before handing over to a new task.
            prepare: what the work needs, fetched before each lease (None: nothing to do now,
                say the job is not running); slow set-up belongs here, not under the lease.
            step: one unit of work under the lease; False when nothing is left or it must stop.
            more: the last look, after the flag is cleared: is there work left?
        """
        deadline = time.monotonic() + budget_s
        while True:
            ready = prepare()
            if ready is None:
                self._clear_kick()
                return False
            lease = Lease(self.r, self.lease_key, self.lease_ms)
            if not lease.acquire():
                self._clear_kick()
                return False  # the holder looks again after it lets go
            try:
                while time.monotonic() < deadline:
                    if not step(ready, lease):
                        break
                    lease.extend()
            except BaseException:
                lease.release()
                self._clear_kick()  # a failed task leaves no flag up to swallow the next kicks
                raise
            lease.release()
            self._clear_kick()
            if not more():
                return False
            if time.monotonic() >= deadline:
                self.requeue()
                return True

    def _clear_kick(self) -> None:
        self.r.delete(self.kick_key)


@dataclass(frozen=True, slots=True)
class LeasedGroupLoop:
    """The same loop over a group of leased things under one kick flag (a drain group's shards:
    ``workers/pipeline/drain_groups.py``), each step working all of them that have work. Work
    is left while a thing's stream holds entries.

    The invariant is ``LeasedLoop``'s, with the flag the group's: it stays set while any of the
    group's leases is held; it is cleared after every lease is let go and before the last look at
    every stream (one pipeline, run in that order); a thing whose lease another holds is left to
    that holder's last look. One round trip takes every lease and reads ahead under each, and one
    lets them all go, clears the flag and looks: a task's fixed cost is paid once per group.
    """

    r: Redis
    lease_keys: Sequence[str]
    streams: Sequence[str]
    lease_ms: int
    kick_key: str
    requeue: Callable[[], object]
    read_ahead: Callable[[int, Any], Callable[[list[Any]], None]]
    """Called with a thing's index and the pipeline that takes the leases: queues that thing's
    first read after its lease (so it runs under it) and returns what takes the results, called
    only when the lease was taken."""

    def run(self, budget_s: float, step: Callable[[list[int]], list[int]]) -> bool:
        """Work until done or out of time; True when it re-queued itself.

        ``step`` is one unit of work of the things at the indexes given (every one whose lease
        is held, so one that runs dry and gets work again is not left waiting for the next
        task), under their leases; it returns the indexes that had work (none: all done). A
        step that raises ends the task: every lease is let go and the flag cleared before the
        error leaves (the caller kicks again if it wants a retry).
        """
        deadline = time.monotonic() + budget_s
        while True:
            leases = [Lease(self.r, key, self.lease_ms) for key in self.lease_keys]
            held = self._acquire(leases)
            if not held:
                self._clear_kick()
                return False  # each holder looks again after it lets go
            try:
                while time.monotonic() < deadline:
                    if not step(held):
                        break
                    for i in held:
                        leases[i].extend()
            except BaseException:
                self._release([leases[i] for i in held])
                raise
            if not self._let_go([leases[i] for i in held], [self.streams[i] for i in held]):
                return False
            if time.monotonic() >= deadline:
                self.requeue()
                return True

    def _acquire(self, leases: list[Lease]) -> list[int]:
        """Take every lease and read ahead under each, in one round trip; the indexes taken."""
        pipe = self.r.pipeline(transaction=False)
        spans: list[tuple[int, int, Callable[[list[Any]], None]]] = []
        for i, lease in enumerate(leases):
            lease.acquire(pipe)
            start = len(pipe)
            use = self.read_ahead(i, pipe)
            spans.append((start, len(pipe), use))
        try:
            results = pipe.execute()
        except BaseException:
            # Which leases were taken is unknown: let go of any that is ours (a release checks
            # the token, so another holder's stays), and of the flag, as a failed step does.
            with contextlib.suppress(Exception):
                self._release(leases)
            raise
        held = []
        for i, (lease, (start, end, use)) in enumerate(zip(leases, spans, strict=True)):
            if lease.taken(results[start - 1]):
                use(results[start:end])
                held.append(i)
        return held

    def _let_go(self, leases: list[Lease], streams: list[str]) -> bool:
        """Release every lease, clear the flag, look at every stream: one pipeline, in order;
        True when any stream holds entries."""
        pipe = self.r.pipeline(transaction=False)
        for lease in leases:
            lease.release(pipe)
        pipe.delete(self.kick_key)
        for stream in streams:
            pipe.xlen(stream)
        try:
            lengths = pipe.execute()[len(leases) + 1 :]
        except NoScriptError:
            # The server did not know the release script (its first use, or after a restart),
            # so the flag was cleared while the leases were still held: all again, in order.
            self._release(leases)
            pipe = self.r.pipeline(transaction=False)
            for stream in streams:
                pipe.xlen(stream)
            lengths = pipe.execute()
        return any(lengths)

    def _release(self, leases: list[Lease]) -> None:
        """Let every lease go, then clear the flag: a round trip each, for the ways out that
        cannot take ``_let_go``'s one pipeline."""
        for lease in leases:
            lease.release()
        self._clear_kick()

    def _clear_kick(self) -> None:
        self.r.delete(self.kick_key)
