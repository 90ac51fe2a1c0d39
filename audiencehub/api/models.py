"""Request and response bodies. Pydantic models, so the OpenAPI document is exact and a bad
request is refused with the field named before any engine code runs.

Requests forbid unknown fields (a typo such as ``existing_user`` is an error, not silently
ignored). Secrets are ``SecretStr`` and ``writeOnly``: they never render in a repr or a response.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from workers.jobs.auths import MAX_PARTITIONS
from workers.jobs.store import DEFAULT_FAILURE_PERIOD_S, DEFAULT_FIELDS, DEFAULT_MAX_BATCH_BYTES

SLUG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,127}$"
STREAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
STREAM_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
MAX_FILTER_CHARS = 100_000
Time = str | int
"""RFC 3339 text (``2026-11-27T09:30:00Z``) or integer nanoseconds since the epoch."""


INT_MIN, INT_MAX = -(2**63), 2**64 - 1
"""The integers orjson (and so every stored definition and stream entry) can encode."""


def _storable(value: Any) -> None:
    """Refuse what JSON parsing lets through but storage cannot encode: unpaired surrogates
    (``"\\ud800"``), integers past 64 bits and NaN/Infinity. Without this they would pass
    validation and fail deep in the engine with a 500."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains an unpaired surrogate (invalid Unicode text)") from None
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError("has an integer outside the 64-bit range; send it as a string")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("has NaN or Infinity; JSON numbers must be finite")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item)
    elif isinstance(value, SecretStr):
        _storable(value.get_secret_value())


class Strict(BaseModel):
    """Base of request bodies: unknown fields refused, every value storable as JSON."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _check_storable(cls, value: Any) -> Any:
        try:
            _storable(value)
        except RecursionError:
            raise ValueError("is nested too deeply; flatten it") from None
        return value


# -- errors -------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    field: str | None = Field(description="Where: a body field path, or 'name (path|query)'.")
    reason: str


class FilterQLPosition(BaseModel):
    line: int = Field(description="1-based line of the offending character.")
    column: int = Field(description="1-based column of the offending character.")
    expected: list[str] = Field(description="What the parser could have accepted there.")
    caret: str = Field(description="The offending line and a caret under the column.")


class EventErrorOut(BaseModel):
    at: str = Field(description="'index N' (0-based, JSON arrays) or 'line N' (1-based, NDJSON).")
    index: int | None = None
    line: int | None = None
    field: str | None
    reason: str


class ErrorBody(BaseModel):
    error: str = Field(description="A short code: invalid, not_found, conflict, unauthorized…")
    message: str = Field(description="One sentence naming the field or value and the fix.")
    field: str | None = None
    details: list[ErrorDetail] = Field(default_factory=list)
    filterql: FilterQLPosition | None = None
    events: list[EventErrorOut] | None = Field(
        None, description="POST /collect only: why each event was refused when none was accepted."
    )
    stored: int | None = Field(
        None,
        description="429/503 on a Redis Cluster only: events stored before a later shard refused "
        "(each shard's part is all-or-nothing; see docs/delivery.md).",
    )


# -- collect ------------------------------------------------------------------------------------
class CollectOut(BaseModel):
    stream: str
    accepted: int = Field(description="Events now durable in Redis; they will be processed.")
    rejected: int
    duplicates: int = Field(
        0,
        description="Of the accepted, repeats of an event id (`_id`/`messageId`) seen within "
        "the dedup window: acknowledged, not applied again.",
    )
    errors: list[EventErrorOut] = Field(description="One entry per rejected event (capped).")
    errors_truncated: bool = False


# -- audiences ----------------------------------------------------------------------------------
class AudienceCreate(Strict):
    slug: str = Field(
        pattern=SLUG_PATTERN,
        description="Short name used by INCLUDE and in messages: letters, digits, '_' and '-'.",
        examples=["active_buyers"],
    )
    filter: str = Field(
        min_length=1, max_length=MAX_FILTER_CHARS, examples=["FILTER AND (EXISTS email)"]
    )
    description: str = Field("", max_length=2000)


class AudienceUpdate(Strict):
    filter: str = Field(min_length=1, max_length=MAX_FILTER_CHARS)


class AudienceOut(BaseModel):
    id: str
    slug: str
    filter: str
    includes: list[str]
    description: str
    created: str
    updated: str


class AudienceChanged(AudienceOut):
    reevaluation_run: str = Field(
        description="The re-check of existing users this change started (GET /reevaluations/{id})."
    )


class FilterValidate(Strict):
    filter: str = Field(min_length=1, max_length=MAX_FILTER_CHARS)
    slug: str | None = Field(
        None,
        pattern=SLUG_PATTERN,
        description="Check the filter as the new filter of this audience (catches INCLUDE cycles).",
    )


class FilterInfo(BaseModel):
    fields: list[str]
    events: list[str]
    includes: list[str]
    time_dependent: bool


class ValidateOut(BaseModel):
    valid: bool
    message: str | None = None
    filterql: FilterQLPosition | None = None
    info: FilterInfo | None = None


class FilterEval(Strict):
    filter: str = Field(min_length=1, max_length=MAX_FILTER_CHARS)
    profile: dict[str, Any] | None = Field(
        None,
        description=(
            "A profile like `audience eval --profile`: fields, plus optional `_events` "
            "(event name -> list of times), `_created`, `_modified`."
        ),
    )
    user_id: str | None = Field(
        None, min_length=1, max_length=256, description="Evaluate a stored profile instead."
    )
    now: Time | None = Field(None, description="Evaluate at this time (default: now).")
    includes: dict[str, str] | None = Field(
        None, description="slug -> FilterQL for audiences the filter may INCLUDE; else stored ones."
    )


class EvalOut(BaseModel):
    matches: bool
    now: str
    next_change: str | None
    next_change_ns: int | None
    time_dependent: bool
    fields: list[str]
    events: list[str]
    includes: list[str]


# -- re-evaluation ------------------------------------------------------------------------------
class ReevaluationCreate(Strict):
    audiences: list[str] = Field(min_length=1, max_length=1000, description="Ids or slugs.")


class RunOut(BaseModel):
    id: str
    audiences: list[str]
    reason: str
    requested: str
    checked: int
    total: int
    done: bool


class ScheduleCreate(Strict):
    audiences: list[str] = Field(min_length=1, max_length=1000, description="Ids or slugs.")
    at: str | None = Field(None, description="Once, at this RFC 3339 time.")
    every: str | None = Field(None, description="On a cron schedule, e.g. '0 3 * * *' (UTC).")


class ScheduleOut(BaseModel):
    id: str
    audiences: list[str]
    next_at: str
    cron: str


# -- authorizations -----------------------------------------------------------------------------
class AuthorizationCreate(Strict):
    label: str = Field(min_length=1, max_length=200)
    connection_string: SecretStr = Field(
        json_schema_extra={"writeOnly": True, "format": "password"},
        description=(
            "Endpoint=sb://<namespace>/;SharedAccessKeyName=<name>;SharedAccessKey=<key>;"
            "EntityPath=<hub>. Stored encrypted; never returned."
        ),
    )
    hub: str | None = Field(
        None, min_length=1, max_length=256, description="Hub name for a namespace-level string."
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=MAX_PARTITIONS,
        description=(
            "The hub's partition count, where the SDK's management call cannot be made; "
            "otherwise it is learned from the hub."
        ),
    )


class DeliveryLayout(BaseModel):
    """How jobs send to the hub: per partition (how many, learned how) or one user per request."""

    model_config = ConfigDict(extra="allow")
    mode: str
    count: int | None = None
    source: str | None = None


class AuthorizationOut(BaseModel):
    id: str
    label: str
    namespace: str
    hub: str
    key_name: str
    emulator: bool
    health: str
    partitions: int | None
    delivery: DeliveryLayout
    created: str


class AuthorizationTest(BaseModel):
    healthy: bool
    detail: str


# -- jobs ---------------------------------------------------------------------------------------
Transition = Literal["enter", "exit"]
FieldName = Annotated[str, Field(min_length=1, max_length=256)]


def _both_transitions() -> list[Transition]:
    return ["enter", "exit"]


class JobCreate(Strict):
    label: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    audiences: list[str] = Field(min_length=1, max_length=1000, description="Ids or slugs.")
    authorization: str | None = Field(None, description="An authorization id or label.")
    connection_string: SecretStr | None = Field(
        None,
        json_schema_extra={"writeOnly": True, "format": "password"},
        description="Instead of `authorization`: stored as a new authorization '<label> hub'.",
    )
    hub: str | None = Field(None, min_length=1, max_length=256)
    existing_users: bool = Field(False, description="Backfill current members as `enter` now.")
    fields: list[FieldName] = Field(
        default_factory=lambda: list(DEFAULT_FIELDS),
        max_length=200,
        description="Profile fields each message carries (user_id is always added).",
    )
    events: list[Transition] = Field(default_factory=_both_transitions, min_length=1, max_length=2)
    transport: Literal["rest", "amqp"] = "rest"
    max_batch_bytes: int = Field(
        DEFAULT_MAX_BATCH_BYTES,
        ge=10_000,
        le=16_000_000,
        description="Hub limit per batch: 262144 on Basic, 1000000 on Standard and up.",
    )
    failure_period_s: int = Field(
        DEFAULT_FAILURE_PERIOD_S,
        ge=1,
        le=10 * 365 * 86400,
        description="Seconds of hub errors before the job fails.",
    )
    changes_only: bool = Field(
        False,
        description=(
            "Messages carry only the audiences that changed, not the user's other current "
            "audiences of the job (which the seed's example carries beside the change)."
        ),
    )
    dry_run: bool = Field(
        False, description="Only report what an existing-users backfill would send (200)."
    )


class AudienceRef(BaseModel):
    id: str
    slug: str


class AudienceMembers(AudienceRef):
    members: int


class JobPreview(BaseModel):
    audiences: list[AudienceMembers]
    messages_at_most: int
    note: str


class JobCounts(BaseModel):
    model_config = ConfigDict(extra="allow")
    sent: int
    backfilled: int
    failed: int
    dead_lettered: int
    dead_letters_waiting: int


class BackfillOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    scanned: int
    total: int
    active: bool


class HistoryEntry(BaseModel):
    at: str
    state: str
    reason: str


class JobStatus(BaseModel):
    """Exactly what ``audiencehub job show`` prints (workers.jobs.status), plus ``history``."""

    model_config = ConfigDict(extra="allow")
    id: str
    label: str
    description: str
    state: str
    state_meaning: str
    reason: str
    next_attempt: str | None
    audiences: list[AudienceRef]
    fields: list[str]
    events: list[str]
    transport: str
    changes_only: bool
    partitions: DeliveryLayout
    created: str
    counts: JobCounts
    backlog: int
    oldest_unsent_age_s: float
    backfill: BackfillOut
    throughput_per_s_last_minute: float
    last_error: dict[str, Any] | None
    history: list[HistoryEntry] | None = None


class JobAddAudience(Strict):
    audience: str = Field(min_length=1, description="An audience id or slug.")
    existing_users: bool = Field(False, description="Backfill this audience's current members.")


class DeadLetterOut(BaseModel):
    id: str
    user_id: str
    reason: str
    at: str
    idempotency_key: str


class ReplayOut(BaseModel):
    replayed: int


# -- profiles -----------------------------------------------------------------------------------
class ProfileOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    user_id: str
    created: str = Field(alias="_created")
    modified: str = Field(alias="_modified")
    fields: dict[str, Any]
    events: dict[str, int] = Field(description="Event name -> occurrences kept.")
    audiences: dict[str, dict[str, str]] = Field(description="Slug -> {enter: time}.")
    next_change: dict[str, str] = Field(description="Slug -> next time the answer can flip.")


class ProfileUpdate(Strict):
    fields: dict[str, Any] = Field(
        min_length=1,
        description="Score fields to set (null removes a field); no event is recorded. "
        "`_ts` (RFC 3339 or epoch ms) dates the update.",
        examples=[{"churn_score": 0.82}],
    )


class ProfileUpdateOut(BaseModel):
    user_id: str
    accepted: bool


# -- system -------------------------------------------------------------------------------------
class IdleOut(BaseModel):
    idle: bool = Field(description="Nothing left to apply, release, deliver or backfill.")
    now: str = Field(description="The engine's now (RFC 3339) the answer is about.")
    pending_entries: int = Field(description="Accepted events and re-checks not applied yet.")
    due_now: bool = Field(description="A time-driven change is due at or before now.")
    pending_messages: int = Field(description="Messages in running jobs' outboxes.")
    backfilling_jobs: list[str] = Field(description="Running jobs whose backfill is unfinished.")
    recheck_runs: list[str] = Field(description="Re-check runs not finished.")
    busy: list[str] = Field(description="What is still going on, in words.")


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    redis: str
