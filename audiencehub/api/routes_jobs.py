"""Export jobs: create (with the existing-users backfill or as a dry run), follow, pause, resume,
stop, add an audience, and dead letters with replay.

A job's status is ``workers.jobs.status.job_status``, the very dict ``audiencehub job show`` prints,
so the CLI, the API and any dashboard always agree.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from audiencehub.api.deps import EngineDep, errors
from audiencehub.api.errors import ApiError
from audiencehub.api.models import (
    STREAM_ID_PATTERN,
    DeadLetterOut,
    JobAddAudience,
    JobCreate,
    JobPreview,
    JobStatus,
    ReplayOut,
    Strict,
)
from audiencehub.api.refs import audience_id, audience_ids, auth_id
from audiencehub.api.routes_auths import connection_string_errors
from workers.delivery.dead_letters import DeadLetters
from workers.engine import Engine
from workers.jobs.control import JobControl
from workers.jobs.setup import NewAuthorization, add_audience, backfill_preview, create_job
from workers.jobs.status import job_status
from workers.jobs.store import Job
from workers.timefmt import format_rfc3339

router = APIRouter(prefix="/jobs", tags=["jobs"])

JobRef = Annotated[str, Path(min_length=1, max_length=256, description="A job id or label.")]
DeadLetterId = Annotated[str, Field(pattern=STREAM_ID_PATTERN)]


class ReplayBody(Strict):
    ids: list[DeadLetterId] | None = Field(
        None, max_length=10_000, description="Dead letter ids to replay (as listed); or set `all`."
    )
    all: bool = False


def _slugs(e: Engine) -> dict[str, str]:
    return {a.id: a.slug for a in e.audiences.all()}


def status_of(e: Engine, job: Job, history: bool = False) -> dict[str, Any]:
    status = job_status(e, job, _slugs(e))
    if history:
        status["history"] = [
            {"at": format_rfc3339(int(h["at"])), "state": h["state"], "reason": h["reason"]}
            for h in JobControl(e).history(job.id)
        ]
    return status


def answer(status: dict[str, Any] | list[dict[str, Any]], code: int = 200) -> JSONResponse:
    """The status as the engine built it: a field added to job_status reaches clients at once,
    and the documented model (checked by the schemathesis test) only describes it."""
    return JSONResponse(status, status_code=code)


def documented(code: int, description: str, *error_codes: int) -> dict[str, Any]:
    return {
        "response_model": None,
        "status_code": code,
        "responses": {
            **errors(*error_codes),
            code: {"model": JobStatus, "description": description},
        },
    }


@router.post(
    "",
    status_code=201,
    response_model=None,
    summary="Create an export job (or, with dry_run, preview its backfill)",
    responses={
        **errors(409, 422),
        201: {"model": JobStatus, "description": "Created; the job's status."},
        200: {"model": JobPreview, "description": "dry_run: what a backfill would send."},
    },
)
def create(body: JobCreate, engine: EngineDep) -> JSONResponse:
    """Give `authorization` (id or label) or `connection_string` (stored as '<label> hub')."""
    if body.dry_run:
        ids = audience_ids(engine, body.audiences)
        return JSONResponse(backfill_preview(engine, ids), status_code=200)
    if (body.authorization is None) == (body.connection_string is None):
        raise ApiError(
            422,
            "give exactly one of `authorization` (an id or label) or `connection_string`",
            field="authorization",
        )
    ids = audience_ids(engine, body.audiences)
    if body.authorization is not None:
        auth: str | NewAuthorization = auth_id(engine, body.authorization)
        text = ""
    else:
        assert body.connection_string is not None
        text = body.connection_string.get_secret_value()
        auth = NewAuthorization(text, body.hub)
    with connection_string_errors(text):
        job = create_job(
            engine,
            body.label,
            auth,
            ids,
            existing_users=body.existing_users,
            fields=tuple(body.fields),
            events=tuple(body.events),
            transport=body.transport,
            description=body.description,
            max_batch_bytes=body.max_batch_bytes,
            failure_period_s=body.failure_period_s,
            changes_only=body.changes_only,
        )
    return answer(status_of(engine, job), 201)


@router.get(
    "",
    summary="Every job with its status",
    response_model=None,
    responses={200: {"model": list[JobStatus], "description": "Every job's status."}},
)
def list_jobs(engine: EngineDep) -> JSONResponse:
    slugs = _slugs(engine)
    return answer([job_status(engine, j, slugs) for j in engine.jobs.all()])


@router.get(
    "/{job_ref}",
    summary="State, audiences, counts, backlog, oldest unsent age, last error, throughput",
    **documented(200, "The job's status.", 404),
)
def show(
    job_ref: JobRef,
    engine: EngineDep,
    history: Annotated[bool, Query(description="Also list state changes.")] = False,
) -> JSONResponse:
    return answer(status_of(engine, engine.jobs.get(job_ref), history))


@router.post(
    "/{job_ref}/pause",
    summary="Stop sending; triggers keep collecting in the outbox",
    **documented(200, "The job's status.", 404, 409),
)
def pause(job_ref: JobRef, engine: EngineDep) -> JSONResponse:
    return answer(status_of(engine, JobControl(engine).pause(job_ref)))


@router.post(
    "/{job_ref}/resume",
    summary="Send again (after a pause, or after fixing what made the job fail)",
    **documented(200, "The job's status.", 404, 409),
)
def resume(job_ref: JobRef, engine: EngineDep) -> JSONResponse:
    return answer(status_of(engine, JobControl(engine).resume(job_ref)))


@router.post(
    "/{job_ref}/stop",
    summary="End the job for good: no new triggers are collected",
    **documented(200, "The job's status.", 404, 409),
)
def stop(job_ref: JobRef, engine: EngineDep) -> JSONResponse:
    return answer(status_of(engine, JobControl(engine).stop(job_ref)))


@router.post(
    "/{job_ref}/audiences",
    summary="Add an audience to a job (optionally backfilling its members)",
    **documented(200, "The job's status.", 404, 409, 422),
)
def add(job_ref: JobRef, body: JobAddAudience, engine: EngineDep) -> JSONResponse:
    job = engine.jobs.get(job_ref)
    audience = audience_id(engine, body.audience)
    return answer(status_of(engine, add_audience(engine, job.id, audience, body.existing_users)))


@router.get(
    "/{job_ref}/dead-letters",
    response_model=list[DeadLetterOut],
    summary="Messages the hub refused for good, with the reason",
    responses=errors(404),
)
def dead_letters(
    job_ref: JobRef,
    engine: EngineDep,
    count: Annotated[int, Query(ge=1, le=10_000, description="At most this many.")] = 100,
) -> list[DeadLetterOut]:
    job = engine.jobs.get(job_ref)
    return [
        DeadLetterOut(
            id=d.id, user_id=d.user_id, reason=d.reason, at=d.at, idempotency_key=d.idempotency_key
        )
        for d in DeadLetters(engine).entries(job.id, count)
    ]


@router.post(
    "/{job_ref}/dead-letters/replay",
    response_model=ReplayOut,
    summary="Put dead letters back in the outbox (by id, or all)",
    responses=errors(404, 422),
)
def replay(job_ref: JobRef, body: ReplayBody, engine: EngineDep) -> ReplayOut:
    """A replayed message is sent after anything its user triggered since."""
    if body.all == bool(body.ids):
        raise ApiError(422, "give dead letter `ids`, or `all`: true (not both)", field="ids")
    job = engine.jobs.get(job_ref)
    count = DeadLetters(engine).replay(job.id, None if body.all else list(body.ids or []))
    return ReplayOut(replayed=count)
