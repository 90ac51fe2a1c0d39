"""Audiences: create, list, read, edit the filter, delete; validate and evaluate FilterQL.

Creating or editing an audience starts a re-check of every existing user, exactly as the CLI
does, and answers with that run's id so a client can follow it at ``/reevaluations/{id}``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response

from audiencehub.api.deps import EngineDep, errors
from audiencehub.api.errors import ApiError
from audiencehub.api.filters import compile_candidate, compile_with, parse_time, profile_from_json
from audiencehub.api.models import (
    AudienceChanged,
    AudienceCreate,
    AudienceOut,
    AudienceUpdate,
    EvalOut,
    FilterEval,
    FilterInfo,
    FilterQLPosition,
    FilterValidate,
    ValidateOut,
)
from workers.audiences.delete import delete_audience
from workers.audiences.registry_store import NotFound
from workers.audiences.store import Audience
from workers.engine import Engine
from workers.filterql import Filter, FilterQLError, compile_set
from workers.pipeline.profile import Profile
from workers.pipeline.profiles import stored_profile
from workers.schedule.reevaluate import Reevaluations
from workers.timefmt import format_rfc3339

log = logging.getLogger("audiencehub.api")
router = APIRouter(prefix="/audiences", tags=["audiences"])

AudienceRef = Annotated[
    str, Path(min_length=1, max_length=256, description="An audience id or slug.")
]


def audience_out(a: Audience) -> AudienceOut:
    return AudienceOut(
        id=a.id,
        slug=a.slug,
        filter=a.filter,
        includes=list(a.includes),
        description=a.description,
        created=format_rfc3339(a.created),
        updated=format_rfc3339(a.updated),
    )


def _changed(e: Engine, a: Audience, reason: str) -> AudienceChanged:
    run = Reevaluations(e).start([a.id], reason)
    return AudienceChanged(**audience_out(a).model_dump(), reevaluation_run=run.id)


def _info(f: Filter) -> FilterInfo:
    return FilterInfo(
        fields=sorted(f.fields),
        events=sorted(f.events),
        includes=sorted(f.includes),
        time_dependent=f.time_dependent,
    )


@router.get("", response_model=list[AudienceOut], summary="List audiences")
def list_audiences(engine: EngineDep) -> list[AudienceOut]:
    return [audience_out(a) for a in engine.audiences.all()]


@router.post(
    "",
    status_code=201,
    response_model=AudienceChanged,
    summary="Create an audience and re-check existing users against it",
    responses=errors(409, 422),
)
def create_audience(body: AudienceCreate, engine: EngineDep) -> AudienceChanged:
    store = engine.audiences
    compile_candidate(store, body.filter, body.slug)
    created = store.create(body.slug, body.filter, body.description)
    return _changed(engine, created, f"audience {created.slug} created")


@router.post(
    "/validate",
    response_model=ValidateOut,
    summary="Check FilterQL as creating (or, with slug, editing) an audience would",
    responses=errors(422),
)
def validate_filter(body: FilterValidate, engine: EngineDep) -> ValidateOut:
    """200 either way: ``valid`` says whether the filter would be accepted, and if not, where."""
    try:
        compiled = compile_candidate(engine.audiences, body.filter, body.slug)
    except ApiError as exc:
        position = FilterQLPosition(**exc.filterql) if exc.filterql else None
        return ValidateOut(valid=False, message=exc.message, filterql=position)
    return ValidateOut(valid=True, info=_info(compiled))


def _stored_profile(e: Engine, user_id: str) -> Profile:
    try:
        return stored_profile(e, user_id)
    except NotFound:
        raise ApiError(422, f"user_id: no profile for user {user_id!r}", field="user_id") from None


@router.post(
    "/eval",
    response_model=EvalOut,
    summary="Evaluate FilterQL against a profile: does it match, and when would that flip?",
    responses=errors(422),
)
def eval_filter(body: FilterEval, engine: EngineDep) -> EvalOut:
    if (body.profile is None) == (body.user_id is None):
        raise ApiError(
            422,
            "give exactly one of `profile` (a JSON profile) or `user_id` (a stored profile)",
            field="profile",
        )
    now = engine.clock.now_ns() if body.now is None else parse_time(body.now, "now")
    known: dict[str, Filter] = {a.slug: a.filter for a in engine.registry.get().audiences.values()}
    if body.includes:
        try:
            known.update(compile_set(body.includes))
        except (FilterQLError, RecursionError) as exc:
            raise ApiError(422, f"includes: {exc}", field="includes") from None
    compiled = compile_with(body.filter, known)
    if body.profile is not None:
        profile = profile_from_json(body.profile)
    else:
        assert body.user_id is not None
        profile = _stored_profile(engine, body.user_id)
    try:
        matched = compiled.matches(profile, now)
        change = compiled.next_change(profile, now)
    except (TypeError, ValueError, ArithmeticError, RecursionError, OverflowError) as exc:
        log.warning("eval of %r failed on a supplied profile", body.filter[:200], exc_info=True)
        raise ApiError(
            422,
            f"the filter could not be evaluated against this profile ({type(exc).__name__}: "
            f"{str(exc)[:200]}); check the profile's value types",
            field="profile",
        ) from None
    return EvalOut(
        matches=matched,
        now=format_rfc3339(now),
        next_change=format_rfc3339(change) if change is not None else None,
        next_change_ns=change,
        time_dependent=compiled.time_dependent,
        fields=sorted(compiled.fields),
        events=sorted(compiled.events),
        includes=sorted(compiled.includes),
    )


@router.get(
    "/{audience_ref}",
    response_model=AudienceOut,
    summary="Read an audience",
    responses=errors(404),
)
def get_audience(audience_ref: AudienceRef, engine: EngineDep) -> AudienceOut:
    return audience_out(engine.audiences.get(audience_ref))


@router.patch(
    "/{audience_ref}",
    response_model=AudienceChanged,
    summary="Replace an audience's filter and re-check every user",
    responses=errors(404, 409, 422),
)
def update_audience(
    audience_ref: AudienceRef, body: AudienceUpdate, engine: EngineDep
) -> AudienceChanged:
    """Users who no longer match exit, new matches enter (sent by the jobs exporting it)."""
    store = engine.audiences
    current = store.get(audience_ref)
    compile_candidate(store, body.filter, current.slug)
    updated = store.update_filter(current.id, body.filter)
    return _changed(engine, updated, f"audience {updated.slug} edited")


@router.delete(
    "/{audience_ref}",
    status_code=204,
    summary="Delete an audience nothing depends on",
    responses={**errors(404, 409), 204: {"description": "Deleted."}},
)
def remove_audience(audience_ref: AudienceRef, engine: EngineDep) -> Response:
    """Refused (409) while a job that is not stopped exports it or another audience INCLUDEs it.
    Its members get no exit message (no live job exports it)."""
    delete_audience(engine, audience_ref)
    return Response(status_code=204)
