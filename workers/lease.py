"""Short leases so one process at a time works a shard (or a job's shard outbox).

A lease is an efficiency, not the safety: shard commits are fenced by the shard version and
outbox acks are idempotent, so a lease that expires under a slow holder costs duplicate effort,
never wrong state.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

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
        self._confirmed = float("-inf")
        """monotonic time the lease was last taken or extended (its expiry is ttl after that)."""
        self._asked = float("-inf")
        """monotonic time a SET queued on a pipeline was sent (``acquire(pipe)``)."""

    def acquire(self, pipe: Any = None) -> bool:
        """Take the lease; with ``pipe``, the SET is queued on it and ``taken`` is told its
        answer once the pipeline has run (False is returned meanwhile)."""
        started = time.monotonic()
        if pipe is not None:
            self._asked = started
            pipe.set(self.key, self.token, nx=True, px=self.ttl_ms)
            return False
        return self.taken(self._r.set(self.key, self.token, nx=True, px=self.ttl_ms), started)

    def taken(self, answer: object, asked: float | None = None) -> bool:
        """The SET's answer: True when the lease is this holder's (counted from ``asked``,
        when the SET was sent)."""
        held = bool(answer)
        if held:
            self._confirmed = self._asked if asked is None else asked
        return held

    def extend(self) -> bool:
        """Push the expiry out again; True while the lease is still this holder's.

        Within the first fifth of the TTL since it was last taken or extended, it is ours for
        certain (nobody else can take an unexpired lease) and at least four fifths of the TTL
        are left: no round trip then. A drain's batches take a few ms each, so this spares one
        call per batch.
        """
        started = time.monotonic()
        if started - self._confirmed < self.ttl_ms / 5000:
            return True
        held = bool(self._extend(keys=[self.key], args=[self.token, self.ttl_ms]))
        if held:
            self._confirmed = started
        return held

    def release(self, pipe: Any = None) -> None:
        """Let the lease go; with ``pipe`` (a pipeline of the same client), the release is queued
        on it by its digest instead (no round trip of its own). The pipeline's execute then
        raises ``NoScriptError`` if the server does not know the script yet (its first use, or
        after a restart): release again without a pipeline, which loads it."""
        if pipe is None:
            self._release(keys=[self.key], args=[self.token])
        else:
            pipe.evalsha(self._release.sha, 1, self.key, self.token)
