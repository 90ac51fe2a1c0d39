"""Where "now" comes from.

Production reads the system clock. Test mode (``AUDIENCEHUB_MODE=test``, refused otherwise) adds an
offset kept in Redis, so black-box tests can move time for real worker and beat processes with
``audiencehub clock advance 7d`` or ``audiencehub clock set 2026-03-01T00:00:00Z``. Only the
offset moves: the test clock keeps running at the system clock's pace.
"""

from __future__ import annotations

import time
from typing import Protocol

from workers.config import ConfigError, Settings
from workers.keys import Keys
from workers.redisconn import AsyncRedis, Redis


class Clock(Protocol):
    def now_ns(self) -> int: ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class RedisOffsetClock:
    """System time plus an offset stored in Redis (test mode only)."""

    def __init__(self, r: Redis, keys: Keys) -> None:
        self._r = r
        self._key = keys.clock_offset

    @property
    def key(self) -> str:
        return self._key

    def offset_ns(self) -> int:
        raw = self._r.get(self._key)
        return int(raw) if raw else 0

    def now_ns(self) -> int:
        return time.time_ns() + self.offset_ns()

    def advance(self, delta_ns: int) -> int:
        """Move now by ``delta_ns`` (negative goes back); returns the new offset."""
        return int(self._r.incrby(self._key, delta_ns))

    def set(self, now_ns: int) -> int:
        """Make now read ``now_ns`` at this instant; from there it keeps running."""
        offset = now_ns - time.time_ns()
        self._r.set(self._key, offset)
        return offset


async def now_ns_async(clock: Clock, r: AsyncRedis) -> int:
    """``clock.now_ns()`` without blocking an event loop: the test clock's offset is read with
    the asyncio client ``r``; any other clock reads no Redis."""
    if isinstance(clock, RedisOffsetClock):
        raw = await r.get(clock.key)
        return time.time_ns() + (int(raw) if raw else 0)
    return clock.now_ns()


def clock_for(cfg: Settings, r: Redis) -> Clock:
    if cfg.testing:
        return RedisOffsetClock(r, Keys(cfg.prefix))
    return SystemClock()


def movable_clock(cfg: Settings, r: Redis) -> RedisOffsetClock:
    if not cfg.testing:
        raise ConfigError(
            "the movable clock exists only in test mode; set AUDIENCEHUB_MODE=test on every "
            "process (never in production)"
        )
    return RedisOffsetClock(r, Keys(cfg.prefix))
