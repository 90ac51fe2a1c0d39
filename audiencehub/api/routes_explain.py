"""``GET /profiles/{user_id}/explain``: why a stored user is in or out of each audience.

The answer is ``workers.audiences.explain.explain_user`` as it built it (what ``audiencehub profile explain
--json`` prints): per audience the filter as a tree with every clause's value for this user, the
clauses that decided, the stored enter time, and the next change with a sentence. The models below
only document it for the OpenAPI contract (and the schemathesis test that checks it); they allow
fields added later.

This router must be included before the profiles router: ``/profiles/{user_id:anytext}`` would
otherwise take ``u1/explain`` as a user id. The price is that a user id that itself ends in
``/explain`` can only be read with this route, not with ``GET /profiles/{user_id}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from audiencehub.api.deps import EngineDep, errors
from audiencehub.api.errors import ApiError
from audiencehub.api.filters import parse_time
from audiencehub.api.routes_profiles import UserId
from workers.audiences.explain import explain_user
from workers.audiences.registry_store import NotFound

router = APIRouter(prefix="/profiles", tags=["profiles"])


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ReadOut(_Open):
    text: str = Field(description='What the clause read, as written (`country`, `"now-7d"`).')
    value: Any = Field(description="The value as JSON (times as RFC 3339); null when missing.")
    shown: str = Field(description="The value as the text form prints it.")


class WindowOut(_Open):
    event: str
    need: int = Field(description="Occurrences needed inside the window.")
    days: float
    since: str = Field(description="Occurrences after this instant count.")
    since_ns: int
    count: int = Field(description="Occurrences inside the window now.")
    times: list[str] = Field(description="Those occurrences, oldest first (RFC 3339).")
    times_ns: list[int]
    total: int = Field(description="Occurrences of the event recorded in all.")


class ClauseOut(_Open):
    kind: str = Field(description="and, or, not, compare, timewindow, include, exists, …")
    text: str = Field(description="The clause as written in the filter.")
    line: int
    column: int
    value: Literal["true", "false", "unknown"]
    decides: bool = Field(description="Among the clauses that decided its parent's value.")
    decided_by: list[int] = Field(description="Indices of the children that decided this one.")
    reads: list[ReadOut]
    window: WindowOut | None = None
    include: str | None = Field(None, description="The INCLUDEd audience's slug.")
    changes_at: str | None = Field(None, description="When this clause's value next changes.")
    changes_at_ns: int | None = None
    children: list[ClauseOut]


class ChangeOut(_Open):
    at: str = Field(description="The next moment the answer changes with no new data.")
    at_ns: int
    enters: bool = Field(description="true: enters then; false: exits then.")
    recheck: bool = Field(description="The search stopped here without a flip; ask again then.")
    path: list[int] = Field(description="Child indices from the root to the clause responsible.")
    clause: str
    sentence: str = Field(
        description="E.g. 'exits 2026-03-14T09:12:00Z when the purchase of "
        "2026-03-07T09:12:00Z leaves the 7-day window'."
    )


class StoredOut(_Open):
    in_: bool = Field(alias="in", description="Membership as the last evaluation committed it.")
    enter: str | None = Field(None, description="When the stored membership began.")
    enter_ns: int | None = None
    next_change: str | None = Field(None, description="The stored re-check time (due index).")
    next_change_ns: int | None = None


class AudienceRefOut(_Open):
    id: str
    slug: str


class ExplanationOut(_Open):
    audience: AudienceRefOut
    user_id: str
    at: str = Field(description="The instant explained (RFC 3339).")
    at_ns: int
    in_: bool = Field(alias="in", description="Whether the filter matches at `at`.")
    stored: StoredOut
    agrees: bool = Field(description="`in` equals the stored membership.")
    disagreement: str | None = Field(None, description="Why they differ, when they do.")
    filter: str
    time_dependent: bool
    tree: ClauseOut
    next_change: ChangeOut | None


@router.get(
    "/{user_id:anytext}/explain",
    response_model=None,
    summary="Why the user is in or out of each audience: clause values, deciders, next change",
    responses={
        **errors(404, 422),
        200: {"model": list[ExplanationOut], "description": "One explanation per audience."},
    },
)
def explain(
    user_id: UserId,
    engine: EngineDep,
    audience: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]] | None,
        Query(max_length=100, description="Audience ids or slugs (repeat); default: all."),
    ] = None,
    at: Annotated[
        str | None,
        Query(max_length=64, description="Explain at this RFC 3339 instant; default: now."),
    ] = None,
) -> JSONResponse:
    """404 when the user has no profile yet; 422 for an unknown audience or a bad time."""
    when = parse_time(at, "at (query)") if at is not None else None
    store = engine.audiences
    for i, ref in enumerate(audience or []):
        try:
            store.get(ref)
        except NotFound as exc:
            raise ApiError(422, f"audience: {exc}", field=f"audience[{i}] (query)") from None
    return JSONResponse(explain_user(engine, user_id, audience or None, when))
