"""Pacing the intake's drain kicks: a drain group gets at most one task per interval from a process.

A drain task costs a few milliseconds of worker CPU however few events it finds (Celery's
receive, ack and trace; the drain's leases and round trips). Events that arrive one request at
a time find their group's kick flag free again as soon as the last drain let go of it, so at a
moderate rate every request or two started a drain of its own: at 500 single events/s the
workers spent most of a core on drains of one or two events each (bench/realtime.py
``--step-ms 2``). Paced, a kick that comes within the interval of the group's last one is sent
when the interval is up; the flag stays set meanwhile, so every request in between rides on
that one drain. A kick after a quiet spell goes at once: sparse events wait for nothing.

Nothing is lost to the wait: the flag outlives a process that dies holding a paced kick by at
most ``KICK_TTL_S``, and beat's sweep then kicks the group, as for any lost task.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("audiencehub.kicks")


class KickPacer:
    """Sends each drain group's kicks (by lead shard) at most once per ``interval_s``.

    ``send`` takes the lead shards due; it runs on the caller's thread for a kick that is due
    at once, and on the pacer's own thread for one that waited.
    """

    def __init__(
        self,
        interval_s: float,
        send: Callable[[list[int]], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self._send = send
        self._clock = clock
        self._last: dict[int, float] = {}
        """When each group's kick last went out (this process)."""
        self._waiting: dict[int, float] = {}
        """Kicks held back: group -> when they go out."""
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, leads: Iterable[int]) -> None:
        """Kick these groups now, or as soon as their interval since the last kick is up."""
        now = self._clock()
        due: list[int] = []
        with self._wake:
            held = False
            for lead in leads:
                if lead in self._waiting:
                    continue  # already on its way: its flag is held until then
                last = self._last.get(lead)
                if last is None or now - last >= self.interval_s:
                    self._last[lead] = now
                    due.append(lead)
                else:
                    self._waiting[lead] = last + self.interval_s
                    held = True
            if held:
                self._ensure_thread()
                self._wake.notify()
        if due:
            self._send(due)

    def waiting(self) -> list[int]:
        """Groups whose kick is being held back."""
        with self._wake:
            return sorted(self._waiting)

    def flush(self) -> None:
        """Send every held-back kick now (a process shutting down hands its kicks on)."""
        with self._wake:
            due = self._take(sorted(self._waiting), self._clock())
        if due:
            self._send(due)

    def _take(self, leads: list[int], now: float) -> list[int]:
        """``leads`` off the waiting list, their kicks counted as sent at ``now`` (under the
        lock)."""
        for lead in leads:
            del self._waiting[lead]
            self._last[lead] = now
        return leads

    def _ensure_thread(self) -> None:
        """Start the sender thread (again after a fork, which keeps only the forking thread).
        A process that exits normally sends what still waits (a CLI import's last kicks); the
        API and the workers flush on their own shutdown too, which may not run ``atexit``."""
        if self._thread is None:
            atexit.register(self.flush)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="audiencehub-kick-pacer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting:
                    self._wake.wait()
                now = self._clock()
                first = min(self._waiting.values())
                if first > now:
                    self._wake.wait(first - now)
                    continue
                due = self._take(
                    sorted(lead for lead, at in self._waiting.items() if at <= now), now
                )
            try:
                self._send(due)
            except Exception:  # the sender logs its own refusals; a bug must not end pacing
                log.exception("paced kick failed; the sweep will find the work")
