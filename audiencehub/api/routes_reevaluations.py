"""Re-checking users against audiences: start a run now, follow it, or schedule re-checks.

A run walks every user in pages through the shards (workers/schedule/reevaluate.py); beat moves it along,
so progress advances only while beat and workers run. Finished runs are kept for an hour.
"""

from __future__ import annotations

from typing import Annotated

from croniter import CroniterError, croniter
from fastapi import APIRouter, Path, Response

from audiencehub.api.deps import EngineDep, errors
from audiencehub.api.errors import ApiError
from audiencehub.api.filters import parse_time
from audiencehub.api.models import ReevaluationCreate, RunOut, ScheduleCreate, ScheduleOut
from audiencehub.api.refs import audience_ids
from workers.audiences.registry_store import NotFound
from workers.schedule.reevaluate import Reevaluations, Run, Schedule
from workers.timefmt import format_rfc3339

router = APIRouter(tags=["re-evaluation"])

RunId = Annotated[str, Path(min_length=1, max_length=64, description="A run id.")]
ScheduleId = Annotated[str, Path(min_length=1, max_length=64, description="A schedule id.")]


def run_out(reevals: Reevaluations, run: Run) -> RunOut:
    checked, total = reevals.progress(run)
    return RunOut(
        id=run.id,
        audiences=list(run.audiences),
        reason=run.reason,
        requested=format_rfc3339(run.requested),
        checked=checked,
        total=total,
        done=bool(run.finished_at),
    )


def schedule_out(item: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=item.id,
        audiences=list(item.audiences),
        next_at=format_rfc3339(item.next_at),
        cron=item.cron,
    )


@router.post(
    "/reevaluations",
    status_code=202,
    response_model=RunOut,
    summary="Re-check every user against these audiences now",
    responses=errors(422),
)
def start_run(body: ReevaluationCreate, engine: EngineDep) -> RunOut:
    """Enters and exits found are sent by the jobs as usual."""
    reevals = Reevaluations(engine)
    run = reevals.start(audience_ids(engine, body.audiences), "requested")
    return run_out(reevals, run)


@router.get("/reevaluations", response_model=list[RunOut], summary="Runs in progress or recent")
def list_runs(engine: EngineDep) -> list[RunOut]:
    reevals = Reevaluations(engine)
    return [run_out(reevals, run) for run in reevals.runs()]


@router.get(
    "/reevaluations/{run_id}",
    response_model=RunOut,
    summary="Progress of a run",
    responses=errors(404),
)
def get_run(run_id: RunId, engine: EngineDep) -> RunOut:
    reevals = Reevaluations(engine)
    run = reevals.get(run_id)
    if run is None:
        raise NotFound(f"no re-evaluation run {run_id!r} (finished runs are kept for an hour)")
    return run_out(reevals, run)


@router.post(
    "/reevaluation-schedules",
    status_code=201,
    response_model=ScheduleOut,
    summary="Re-check audiences once at a time (`at`) or on a cron schedule (`every`)",
    responses=errors(422),
)
def create_schedule(body: ScheduleCreate, engine: EngineDep) -> ScheduleOut:
    if (body.at is None) == (body.every is None):
        raise ApiError(
            422, "give exactly one of `at` (RFC 3339 time) or `every` (cron)", field="at"
        )
    if body.every is not None and not croniter.is_valid(body.every):
        raise ApiError(
            422,
            f"every: {body.every[:60]!r} is not a cron expression like '0 3 * * *'",
            field="every",
        )
    ids = audience_ids(engine, body.audiences)
    when = parse_time(body.at, "at") if body.at is not None else None
    try:
        item = Reevaluations(engine).schedule(ids, at=when, cron=body.every or "")
    except CroniterError as exc:  # valid syntax that never fires, e.g. '0 0 31 2 *'
        raise ApiError(422, f"every: {exc}; it never fires", field="every") from None
    return schedule_out(item)


@router.get(
    "/reevaluation-schedules",
    response_model=list[ScheduleOut],
    summary="Scheduled re-checks",
)
def list_schedules(engine: EngineDep) -> list[ScheduleOut]:
    return [schedule_out(s) for s in Reevaluations(engine).schedules()]


@router.delete(
    "/reevaluation-schedules/{schedule_id}",
    status_code=204,
    summary="Cancel a scheduled re-check",
    responses={**errors(404), 204: {"description": "Cancelled."}},
)
def delete_schedule(schedule_id: ScheduleId, engine: EngineDep) -> Response:
    if not Reevaluations(engine).unschedule(schedule_id):
        raise NotFound(f"no re-evaluation schedule {schedule_id!r}")
    return Response(status_code=204)
