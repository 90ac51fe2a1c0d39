"""Authorizations: Event Hub connection strings, written once and never shown again.

The connection string is accepted on create and nowhere returned: responses carry namespace, hub,
key name and health. Error messages about a bad string are scrubbed of its parts before they
leave, and request bodies are never logged or echoed in validation errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path, Response

from audiencehub.api.deps import EngineDep, errors
from audiencehub.api.errors import ApiError, scrub
from audiencehub.api.models import (
    AuthorizationCreate,
    AuthorizationOut,
    AuthorizationTest,
    DeliveryLayout,
)
from workers.delivery.eventhub.connstr import ConnectionStringError
from workers.delivery.hub_partitions import HubPartitions
from workers.engine import Engine
from workers.jobs.auths import Authorization
from workers.jobs.setup import check_authorization
from workers.timefmt import format_rfc3339

router = APIRouter(prefix="/authorizations", tags=["authorizations"])

AuthRef = Annotated[
    str, Path(min_length=1, max_length=256, description="An authorization id or label.")
]


def auth_out(e: Engine, a: Authorization) -> AuthorizationOut:
    layout = DeliveryLayout(**HubPartitions(e.r, e.keys).layout(a).public())
    return AuthorizationOut(**a.public(), delivery=layout, created=format_rfc3339(a.created))


@contextmanager
def connection_string_errors(text: str, field: str = "connection_string") -> Iterator[None]:
    """A bad connection string is a 422 whose message quotes none of it."""
    try:
        yield
    except ConnectionStringError as exc:
        raise ApiError(422, f"{field}: {scrub(str(exc), text)}", field=field) from None


@router.post(
    "",
    status_code=201,
    response_model=AuthorizationOut,
    summary="Store an Event Hub connection string (write-only)",
    responses=errors(409, 422),
)
def create_authorization(body: AuthorizationCreate, engine: EngineDep) -> AuthorizationOut:
    text = body.connection_string.get_secret_value()
    with connection_string_errors(text):
        created = engine.auths.create(body.label, text, body.hub, body.partitions)
    return auth_out(engine, created)


@router.get("", response_model=list[AuthorizationOut], summary="List authorizations")
def list_authorizations(engine: EngineDep) -> list[AuthorizationOut]:
    return [auth_out(engine, a) for a in engine.auths.all()]


@router.get(
    "/{auth_ref}",
    response_model=AuthorizationOut,
    summary="Read an authorization (never its key)",
    responses=errors(404),
)
def get_authorization(auth_ref: AuthRef, engine: EngineDep) -> AuthorizationOut:
    return auth_out(engine, engine.auths.get(auth_ref))


@router.delete(
    "/{auth_ref}",
    status_code=204,
    summary="Delete an authorization no running job uses",
    responses={**errors(404, 409), 204: {"description": "Deleted."}},
)
def delete_authorization(auth_ref: AuthRef, engine: EngineDep) -> Response:
    """Refused (409) while a job that is not stopped uses it."""
    target = engine.auths.get(auth_ref)
    jobs = engine.jobs.all()
    using = [j.id for j in jobs if j.auth_id == target.id and j.state != "stopped"]
    engine.auths.delete(target.id, using)
    return Response(status_code=204)


@router.post(
    "/{auth_ref}/test",
    response_model=AuthorizationTest,
    summary="Ask the hub about itself with this key (nothing is sent)",
    responses=errors(404, 409),
)
def test_authorization(auth_ref: AuthRef, engine: EngineDep) -> AuthorizationTest:
    """200 either way; ``healthy`` says whether the hub accepted the key for the SDK's
    management call (which also learns its partitions). Records the health. Whether the key
    may send shows at a job's first batch."""
    ok, detail = check_authorization(engine, auth_ref)
    return AuthorizationTest(healthy=ok, detail=detail)
