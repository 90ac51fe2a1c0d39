"""Short leases so one process at a time works a shard (or a job's shard outbox).

A lease is an efficiency, not the safety: shard commits are fenced by the shard version and
outbox acks are idempotent, so a lease that expires under a slow holder costs duplicate effort,
never wrong state.
"""

from __future__ import annotations

import secrets

from workers.lua import script
from workers.redisconn import Redis


class Lease:
    def __init__(self, r: Redis, key: str, ttl_ms: int) -> None:
        self._r = r
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(8)
        self._release = script(r, "lease_release")
        self._extend = script(r, "lease_extend")

    def acquire(self) -> bool:
        return bool(self._r.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def extend(self) -> bool:
        return bool(self._extend(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.token])
