"""Profiles: read one user, and set score fields (a profile update that records no event).

The read is ``audiencehub profile show``; the update is ``audiencehub profile set``: it goes
through the user's shard like every other change, so it is applied by the shard's drainer (the one
writer of that user) shortly after the 202, and audiences reading those fields re-evaluate then.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.convertors import PathConvertor, register_url_convertor

from audiencehub.api.deps import EngineDep, MetricsDep, errors
from audiencehub.api.errors import ApiError
from audiencehub.api.metrics import SCORES_STREAM
from audiencehub.api.models import ProfileOut, ProfileUpdate, ProfileUpdateOut
from workers.pipeline.entries import SCORE
from workers.pipeline.events import EVENT_FIELD, USER_ID_FIELD
from workers.pipeline.ingest import Ingestor, Item
from workers.pipeline.profiles import describe, stored_profile

router = APIRouter(prefix="/profiles", tags=["profiles"])


class AnyText(PathConvertor):
    """The rest of the path, newlines included: user ids may hold '/' and any other character
    (Starlette's ``path`` convertor stops at a newline)."""

    regex = r"[\s\S]+"


register_url_convertor("anytext", AnyText())

UserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        description="The user id (URL-encoded; it may contain '/').",
    ),
]


@router.get(
    "/{user_id:anytext}",
    response_model=ProfileOut,
    summary="A user's merged fields, event counts, memberships and next changes",
    responses=errors(404),
)
def show(user_id: UserId, engine: EngineDep) -> dict[str, Any]:
    return describe(engine, stored_profile(engine, user_id))


@router.patch(
    "/{user_id:anytext}",
    status_code=202,
    response_model=ProfileUpdateOut,
    summary="Set score fields without recording an event",
    responses=errors(422, 429),
)
def set_scores(
    user_id: UserId, body: ProfileUpdate, engine: EngineDep, metrics: MetricsDep
) -> ProfileUpdateOut:
    """202 once the update is durable; it is applied by the user's shard shortly after."""
    fields = dict(body.fields)
    if EVENT_FIELD in fields:
        raise ApiError(
            422,
            f"fields.{EVENT_FIELD}: a score update records no event, so a field named "
            f"'{EVENT_FIELD}' would be dropped; send events to POST /collect/{{stream}}",
            field=f"fields.{EVENT_FIELD}",
        )
    given = fields.get(USER_ID_FIELD)
    if given is not None and str(given) != user_id:
        raise ApiError(
            422,
            f"fields.{USER_ID_FIELD}: {str(given)[:60]!r} differs from the user in the path; "
            "leave it out",
            field=f"fields.{USER_ID_FIELD}",
        )
    fields[USER_ID_FIELD] = user_id
    items: list[Item] = [("fields", fields, None)]
    result = Ingestor(engine).ingest(items, SCORE)
    metrics.count_events(SCORES_STREAM, result.accepted, result.rejected)
    if result.errors:
        err = result.errors[0]
        where = f"fields.{err.field}" if err.field else "fields"
        raise ApiError(422, f"{where}: {err.reason}", field=where)
    return ProfileUpdateOut(user_id=user_id, accepted=True)
