"""Export jobs: which audiences go to which hub, with which fields, in which state."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from workers.audiences.registry_store import Conflict, DefinitionStore, NotFound, new_id
from workers.keys import Keys
from workers.redisconn import Redis

DEFAULT_FIELDS = ("_created", "_modified", "email", "user_id")
TRANSITIONS = ("enter", "exit")
TRANSPORTS = ("rest", "amqp")

STATES = {
    "running": "sending triggers as they happen",
    "backfilling": "sending the existing members, and live triggers beside them",
    "sleeping": "backing off after hub errors; retries at the next attempt time",
    "paused": "collecting triggers in the outbox without sending; resume sends them",
    "failed": "stopped sending after an error that needs you; the backlog is kept",
    "stopped": "finished; no new triggers are collected",
}
STORED_STATES = ("running", "paused", "failed", "stopped")
"""What an operator (or a fatal error) sets. ``backfilling`` and ``sleeping`` are derived from the
backfill progress and the delivery health, so they never race with pause/resume."""
COLLECTING = frozenset(STORED_STATES) - {"stopped"}
DEFAULT_FAILURE_PERIOD_S = 10 * 3600
DEFAULT_MAX_BATCH_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    label: str
    auth_id: str
    audiences: tuple[str, ...]
    fields: tuple[str, ...] = DEFAULT_FIELDS
    events: tuple[str, ...] = TRANSITIONS
    transport: str = "rest"
    state: str = "running"
    reason: str = ""
    description: str = ""
    existing_users: bool = False
    created: int = 0
    failure_period_s: int = DEFAULT_FAILURE_PERIOD_S
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    changes_only: bool = False
    """Messages carry only the audiences that changed, not the user's other current ones."""

    @property
    def collecting(self) -> bool:
        return self.state in COLLECTING

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _from_raw(d: dict[str, Any]) -> Job:
    return Job(
        **{
            **{k: v for k, v in d.items() if k in Job.__dataclass_fields__},
            "audiences": tuple(d["audiences"]),
            "fields": tuple(d["fields"]),
            "events": tuple(d["events"]),
        }
    )


class JobStore(DefinitionStore):
    def __init__(self, r: Redis, keys: Keys) -> None:
        super().__init__(r, keys, keys.jobs)

    def all(self) -> list[Job]:
        return sorted((_from_raw(d) for d in self.raw_all()), key=lambda j: j.created)

    def get(self, id_or_label: str) -> Job:
        d = self.raw_get(id_or_label)
        if d is None:
            d = self.by_label(id_or_label, "job")
        if d is None:
            raise NotFound(f"no job with id or label {id_or_label!r}")
        return _from_raw(d)

    def create(
        self,
        label: str,
        auth_id: str,
        audiences: list[str],
        fields: tuple[str, ...] = DEFAULT_FIELDS,
        events: tuple[str, ...] = TRANSITIONS,
        transport: str = "rest",
        description: str = "",
        existing_users: bool = False,
        failure_period_s: int = DEFAULT_FAILURE_PERIOD_S,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        changes_only: bool = False,
    ) -> Job:
        if not audiences:
            raise Conflict("a job needs at least one audience")
        bad = [e for e in events if e not in TRANSITIONS]
        if bad or not events:
            raise Conflict(f"events must be a non-empty subset of enter,exit (got {events})")
        if transport not in TRANSPORTS:
            raise Conflict(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        if not 10_000 <= max_batch_bytes <= 16_000_000:
            raise Conflict("max batch bytes must be between 10,000 and 16,000,000")
        if failure_period_s < 1:
            raise Conflict("the failure period must be at least 1 second")
        if "user_id" not in fields:
            fields = (*fields, "user_id")
        job = Job(
            new_id(),
            label,
            auth_id,
            tuple(dict.fromkeys(audiences)),
            tuple(dict.fromkeys(fields)),
            tuple(events),
            transport,
            "running",
            "",
            description,
            existing_users,
            time.time_ns(),
            failure_period_s,
            max_batch_bytes,
            changes_only,
        )
        self.put_new_labelled(job.id, job.as_dict(), "job")
        return job

    def set_state(self, job_id: str, state: str, reason: str = "") -> Job:
        if state not in STORED_STATES:
            raise Conflict(f"a job can be set to {', '.join(STORED_STATES)}, not {state!r}")
        job = self.get(job_id)
        if job.state == "stopped" and state != "stopped":
            raise Conflict(f"job {job.id} is stopped for good; create a new job instead")
        updated = replace(job, state=state, reason=reason)
        self.raw_put(job.id, updated.as_dict())
        return updated

    def update(self, job: Job) -> Job:
        self.raw_put(job.id, job.as_dict())
        return job
