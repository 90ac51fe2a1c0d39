"""Fault injection points for crash tests, armed through Redis and only in test mode.

``fire(point)`` is a no-op in production. In test mode a test arms a point with a count
(``HSET p:faults drain.after_commit 1``); the next ``count`` passes through that point kill the
process with SIGKILL, exactly as a crash would, so tests can prove nothing is lost or doubled.
A ``.stall`` point sleeps for a minute instead, as a stuck task would (to meet a time limit).
"""

from __future__ import annotations

import os
import signal
import time

from workers.config import Settings
from workers.keys import Keys
from workers.redisconn import Redis

STALL_S = 60

POINTS = (
    "drain.stall",
    "drain.before_commit",
    "drain.after_commit",
    "deliver.after_send",
)


_armed_checked_at = 0.0
_armed = False


def fire(cfg: Settings, r: Redis, point: str) -> None:
    global _armed_checked_at, _armed
    if not cfg.testing:
        return
    key = Keys(cfg.prefix).faults
    now = time.monotonic()
    if now - _armed_checked_at > 1.0:  # one EXISTS a second, not two writes a batch
        _armed, _armed_checked_at = bool(r.exists(key)), now
    if not _armed:
        return
    if r.hincrby(key, point, -1) >= 0:
        if point.endswith(".stall"):
            time.sleep(STALL_S)
            return
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        r.hdel(key, point)


def arm(cfg: Settings, r: Redis, point: str, count: int = 1) -> None:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(POINTS)}")
    r.hset(Keys(cfg.prefix).faults, point, count)
