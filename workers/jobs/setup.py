"""Creating jobs and changing their audiences: the steps the seed's configuration screen takes.

Shared by the CLI and the HTTP API so both behave the same: create (optionally with the Existing
Users backfill), dry run, add an audience to a running job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from workers.audiences.registry_store import Conflict
from workers.delivery.eventhub.connstr import ConnectionStringError
from workers.delivery.eventhub.management import hub_properties
from workers.delivery.eventhub.sender import HubError
from workers.delivery.hub_partitions import HubPartitions
from workers.engine import Engine
from workers.jobs.backfill import Backfills, drains_paused
from workers.jobs.control import JobControl
from workers.jobs.store import Job
from workers.pipeline.member_index import MemberIndex


def member_counts(engine: Engine, audience_ids: list[str]) -> dict[str, int]:
    e = engine
    pipe = e.r.pipeline(transaction=False)
    for aid in audience_ids:
        for shard in range(e.cfg.shards):
            MemberIndex(e.keys, shard, aid).count(pipe)
    counts = pipe.execute()
    n = e.cfg.shards
    return {aid: sum(counts[i * n : (i + 1) * n]) for i, aid in enumerate(audience_ids)}


def backfill_preview(engine: Engine, audience_refs: list[str]) -> dict[str, Any]:
    """How many users an Existing Users backfill would send, per audience, creating nothing."""
    store = engine.audiences
    audiences = [store.get(ref) for ref in audience_refs]
    counts = member_counts(engine, [a.id for a in audiences])
    return {
        "audiences": [{"id": a.id, "slug": a.slug, "members": counts[a.id]} for a in audiences],
        "messages_at_most": sum(counts.values()),
        "note": "a user in several of these audiences gets one message holding all of them",
    }


@dataclass(frozen=True, slots=True)
class NewAuthorization:
    """A connection string given with the job instead of an existing authorization: stored as
    the job's own authorization, labelled ``"<job label> hub"``."""

    connection_string: str
    hub: str | None = None


def create_job(
    engine: Engine,
    label: str,
    auth: str | NewAuthorization,
    audience_refs: list[str],
    existing_users: bool = False,
    **options: Any,
) -> Job:
    """Create a job sending to ``auth`` (an authorization id or label, or a new one to store).

    The one way a job is made (CLI, API, benchmarks). An authorization stored here is removed
    again when the job is refused, so a failed create leaves nothing behind.
    """
    ids = [engine.audiences.get(ref).id for ref in audience_refs]
    if isinstance(auth, str):
        return _create(engine, label, engine.auths.get(auth).id, ids, existing_users, options)
    engine.jobs.check_label_free(label, "job")  # before its authorization is stored
    created = engine.auths.create(f"{label} hub", auth.connection_string, auth.hub)
    try:
        return _create(engine, label, created.id, ids, existing_users, options)
    except BaseException:
        engine.auths.delete(created.id, [])
        raise


def _create(
    engine: Engine,
    label: str,
    auth_id: str,
    ids: list[str],
    existing_users: bool,
    options: dict[str, Any],
) -> Job:
    jobs = engine.jobs
    if not existing_users:
        job = jobs.create(label, auth_id, ids, existing_users=existing_users, **options)
        JobControl(engine).record(job.id, "running", "created")
        return job
    with drains_paused(engine):  # memberships recorded before ``started`` are the backfill's
        job = jobs.create(label, auth_id, ids, existing_users=existing_users, **options)
        started = engine.clock.now_ns()
    control = JobControl(engine)
    control.record(job.id, "running", "created")
    Backfills(engine).start(job, started=started)
    control.record(job.id, "backfilling", "existing users backfill started")
    return job


def add_audience(engine: Engine, job_ref: str, audience_ref: str, existing_users: bool) -> Job:
    """Add an audience to a job; with ``existing_users`` backfill only that audience."""
    jobs = engine.jobs
    job = jobs.get(job_ref)
    audience = engine.audiences.get(audience_ref)
    if audience.id in job.audiences:
        raise Conflict(f"job {job.id} already exports audience {audience.slug!r}")
    backfills = Backfills(engine)
    if existing_users and backfills.active(job.id):
        raise Conflict(
            f"job {job.id} is still backfilling; add {audience.slug!r} when that has finished"
        )
    if not existing_users:
        updated = jobs.update(replace(job, audiences=(*job.audiences, audience.id)))
        JobControl(engine).record(job.id, job.state, f"audience {audience.slug} added")
        return updated
    with drains_paused(engine):
        updated = jobs.update(replace(job, audiences=(*job.audiences, audience.id)))
        started = engine.clock.now_ns()
    JobControl(engine).record(job.id, job.state, f"audience {audience.slug} added")
    backfills.start(updated, [audience.id], started=started)
    return updated


def check_authorization(engine: Engine, auth_ref: str) -> tuple[bool, str]:
    """Ask the hub to describe itself with this key (the SDK's management call); records the
    health and the partition ids. Nothing is sent to the hub's consumers.

    What it proves: the namespace answers as Event Hubs, the hub exists, and it accepts tokens
    signed with this key. What it cannot: that the key may send (a Listen-only key passes too),
    which only a real send shows; a job's first batch does, and a 401 fails the job at once.
    """
    auths = engine.auths
    auth = auths.get(auth_ref)
    try:
        props = hub_properties(auths.connection(auth.id))
    except (HubError, ConnectionStringError) as err:
        detail = f"the hub did not accept the management call: {err}"
        auths.set_health(auth.id, f"unhealthy: {detail}")
        return False, detail
    HubPartitions(engine.r, engine.keys).learned(auth.id, props.partition_ids)
    count = len(props.partition_ids)
    detail = (
        f"the hub accepted the key for event hub {props.name!r} ({count} partitions); "
        "sending itself is proven by a job's first accepted batch"
    )
    if auth.partitions and auth.partitions != count:
        detail += (
            f"; note: this authorization says --partitions {auth.partitions}, which is what jobs "
            f"use, but the hub has {count}"
        )
    auths.set_health(auth.id, "healthy")
    return True, detail
