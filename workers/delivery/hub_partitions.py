"""How many partitions an authorization's hub has, where we learned it, and so how a job sends.

Sending per partition keeps every user's messages on the partition the service would choose for
the user's key, in order, with full batches (docs/delivery.md). That needs the partition ids:

- set by the operator (``auth create --partitions N``, ids "0".."N-1") where the management call
  cannot be made; then nothing is asked;
- else learned with the SDK's management call, at a job's first delivery and again every
  ``REFRESH_S``, so partitions added to a Premium or Dedicated hub are followed (by REST and AMQP
  jobs alike); one process asks at a time, the answer is shared through Redis;
- else unknown: each REST request carries one user's messages, placed by the hub from the key.
  Slow, never wrong.

One owner of ``p:auth:<auth>:partitions`` (a hash: ``ids`` JSON, ``learned_at``, ``error``,
``failed_at``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from workers.delivery.eventhub.sender import HubError
from workers.jobs.auths import Authorization
from workers.keys import Keys
from workers.redisconn import Redis
from workers.timefmt import NS_PER_S, format_rfc3339

REFRESH_S = 300
"""How old learned partition ids may get before a deliverer asks the hub again."""
RETRY_S = 60
"""After a failed management call, how long before the next attempt."""
LOCK_S = 30

PER_PARTITION = "one request per partition"
PER_USER = "one user per request"
OVERRIDE = "set by auth create --partitions"
MANAGEMENT = "management call"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PartitionLayout:
    ids: tuple[str, ...] | None
    source: str
    learned_at: int = 0
    error: str = ""
    failed_at: int = 0

    @property
    def mode(self) -> str:
        return PER_PARTITION if self.ids else PER_USER

    def public(self) -> dict[str, Any]:
        """What ``auth show`` and ``job show`` print about it."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "count": len(self.ids) if self.ids else None,
            "source": self.source,
        }
        if self.learned_at:
            out["learned_at"] = format_rfc3339(self.learned_at)
            out["next_refresh_after"] = format_rfc3339(self.learned_at + REFRESH_S * NS_PER_S)
        if self.error:
            out["last_failure"] = self.error
            out["failed_at"] = format_rfc3339(self.failed_at)
        if self.source == UNKNOWN and not self.error:
            out["note"] = "learned with the management call at the first delivery"
        return out


def override_ids(count: int) -> tuple[str, ...]:
    """Event Hubs numbers partitions "0".."N-1"."""
    return tuple(str(i) for i in range(count))


class HubPartitions:
    def __init__(self, r: Redis, keys: Keys) -> None:
        self._r = r
        self._keys = keys

    def layout(self, auth: Authorization) -> PartitionLayout:
        """What is known now, without asking the hub."""
        if auth.partitions:
            return PartitionLayout(override_ids(auth.partitions), OVERRIDE)
        raw = cast(dict[bytes, bytes], self._r.hgetall(self._keys.auth_partitions(auth.id)))
        ids_raw = raw.get(b"ids")
        ids = tuple(str(i) for i in orjson.loads(ids_raw)) if ids_raw else None
        return PartitionLayout(
            ids or None,
            MANAGEMENT if ids else UNKNOWN,
            int(raw.get(b"learned_at", 0)),
            raw.get(b"error", b"").decode(),
            int(raw.get(b"failed_at", 0)),
        )

    def current(
        self,
        auth: Authorization,
        learn: Callable[[], Sequence[str]],
        now: int | None = None,
    ) -> PartitionLayout:
        """The layout to send with: asks the hub (``learn``) when what we know is too old."""
        known = self.layout(auth)
        if known.source == OVERRIDE:
            return known
        now = time.time_ns() if now is None else now
        fresh = known.learned_at and now - known.learned_at < REFRESH_S * NS_PER_S
        resting = known.failed_at and now - known.failed_at < RETRY_S * NS_PER_S
        if fresh or resting:
            return known
        if not self._r.set(self._keys.auth_partitions_lock(auth.id), 1, nx=True, ex=LOCK_S):
            return known  # another process is asking; use what we have meanwhile
        try:
            ids = tuple(learn())
        except HubError as err:
            self.failed(auth.id, err.reason, now)
        else:
            self.learned(auth.id, ids, now)
        finally:
            self._r.delete(self._keys.auth_partitions_lock(auth.id))
        return self.layout(auth)

    def learned(self, auth_id: str, ids: Sequence[str], now: int | None = None) -> None:
        now = time.time_ns() if now is None else now
        self._r.hset(
            self._keys.auth_partitions(auth_id),
            mapping={
                "ids": orjson.dumps(list(ids)),
                "learned_at": now,
                "error": "",
                "failed_at": 0,
            },
        )

    def failed(self, auth_id: str, reason: str, now: int | None = None) -> None:
        """Keeps ids learned before (a hub does not lose partitions), notes why it failed."""
        now = time.time_ns() if now is None else now
        self._r.hset(
            self._keys.auth_partitions(auth_id), mapping={"error": reason, "failed_at": now}
        )
