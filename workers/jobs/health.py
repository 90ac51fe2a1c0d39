"""Delivery health of a job: back off after hub errors, fail after too long, recover on success.

Kept apart from the job definition so that a deliverer backing off never rewrites the job (and
never races an operator's pause or resume). ``sleeping`` is shown while the next attempt lies in
the future.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import cast

import orjson

from workers.delivery.eventhub.sender import HubError
from workers.jobs.store import Job
from workers.keys import Keys
from workers.redisconn import Redis
from workers.timefmt import NS_PER_S

BASE_DELAY_S = 0.1
MAX_DELAY_S = 300.0


@dataclass(frozen=True, slots=True)
class Health:
    failures: int = 0
    first_failure_at: int = 0
    retry_at: int = 0

    def sleeping(self, now: int) -> bool:
        return self.retry_at > now


def backoff_s(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """Exponential with full jitter on the upper half, never below the hub's Retry-After."""
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(failures - 1, 0))
    delay = ceiling * (0.5 + rng.random() / 2)
    return float(max(delay, retry_after or 0.0))


class JobHealth:
    def __init__(self, r: Redis, keys: Keys, rng: random.Random | None = None) -> None:
        self._r = r
        self._keys = keys
        self._rng = rng or random.Random()

    def get(self, job_id: str) -> Health:
        raw = cast(dict[bytes, bytes], self._r.hgetall(self._keys.job_health(job_id)))
        if not raw:
            return Health()
        return Health(
            int(raw.get(b"failures", 0)),
            int(raw.get(b"first_failure_at", 0)),
            int(raw.get(b"retry_at", 0)),
        )

    def failed(self, job: Job, err: HubError, now: int) -> tuple[Health, bool]:
        """Record a failed attempt; returns the new health and whether the job must now fail
        because errors lasted longer than its failure period."""
        current = self.get(job.id)
        if current.sleeping(now):
            return current, False  # another shard's deliverer already backed off for this error
        failures = current.failures + 1
        first = current.first_failure_at or now
        delay = backoff_s(failures, err.retry_after, self._rng)
        health = Health(failures, first, now + int(delay * NS_PER_S))
        self._r.hset(
            self._keys.job_health(job.id),
            mapping={"failures": failures, "first_failure_at": first, "retry_at": health.retry_at},
        )
        self.note_error(job.id, err, now)
        return health, (now - first) > job.failure_period_s * NS_PER_S

    def note_error(self, job_id: str, err: HubError, now: int) -> None:
        """The last error, as ``job show`` prints it (the reason never holds a secret)."""
        info = {"at": now, "kind": err.kind, "status": err.status, "reason": err.reason}
        pipe = self._r.pipeline(transaction=False)
        pipe.set(self._keys.job_error(job_id), orjson.dumps(info))
        pipe.hincrby(self._keys.job_stats(job_id), "send_errors", 1)
        pipe.execute()

    def clear(self, job_id: str) -> None:
        """After a success, or on resume: next attempt now, a fresh failure period."""
        self._r.delete(self._keys.job_health(job_id))
