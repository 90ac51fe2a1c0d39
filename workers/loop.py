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

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

from workers.lease import Lease
from workers.redisconn import Redis

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StreamLength:
    """A last look that is a stream's length (work is left while it holds entries), asked in the
    round trip that lets the lease go and clears the kick flag, in that order, instead of three
    round trips one after another (a drain task's fixed cost: most tasks drain one or two
    batches at a moderate rate)."""

    key: str


@dataclass(frozen=True, slots=True)
class LeasedLoop:
    r: Redis
    lease_key: str
    lease_ms: int
    kick_key: str
    requeue: Callable[[], object]
    read_ahead: Callable[[Any], Callable[[list[Any]], None]] | None = None
    """Commands sent in the round trip that takes the lease, after it (so they run under it):
    called with the pipeline, it queues them and returns what takes their results, which is
    called only when the lease was taken (the drain's first read: one round trip fewer)."""

    def run(
        self,
        budget_s: float,
        prepare: Callable[[], T | None],
        step: Callable[[T, Lease], bool],
        more: Callable[[], bool] | StreamLength,
    ) -> bool:
        """Work until done or out of time; True when it re-queued itself.

        Args:
            budget_s: time to work before handing over to a new task.
            prepare: what the work needs, fetched before each lease (None: nothing to do now,
                say the job is not running); slow set-up belongs here, not under the lease.
            step: one unit of work under the lease; False when nothing is left or it must stop.
            more: the last look, after the flag is cleared: is there work left? (or the stream
                whose length says so, asked in the same round trip)
        """
        deadline = time.monotonic() + budget_s
        while True:
            ready = prepare()
            if ready is None:
                self._clear_kick()
                return False
            lease = Lease(self.r, self.lease_key, self.lease_ms)
            if not self._acquire(lease):
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
            if isinstance(more, StreamLength):
                left = self._let_go(lease, more.key)
            else:
                lease.release()
                self._clear_kick()
                left = more()
            if not left:
                return False
            if time.monotonic() >= deadline:
                self.requeue()
                return True

    def _acquire(self, lease: Lease) -> bool:
        if self.read_ahead is None:
            return lease.acquire()
        pipe = self.r.pipeline(transaction=False)
        lease.acquire(pipe)
        use = self.read_ahead(pipe)
        results = pipe.execute()
        if not lease.taken(results[0]):
            return False
        use(results[1:])
        return True

    def _let_go(self, lease: Lease, stream: str) -> bool:
        """Release, clear the flag, look at the stream's length: one pipeline, run in order."""
        pipe = self.r.pipeline(transaction=False)
        lease.release(pipe)
        pipe.delete(self.kick_key)
        pipe.xlen(stream)
        try:
            length = pipe.execute()[-1]
        except NoScriptError:
            # The server did not know the release script (its first use, or after a restart),
            # so the flag was cleared while the lease was still held: all three again, in order.
            lease.release()
            self._clear_kick()
            return bool(self.r.xlen(stream))
        return bool(length)

    def _clear_kick(self) -> None:
        self.r.delete(self.kick_key)
