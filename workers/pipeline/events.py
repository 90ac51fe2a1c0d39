"""Incoming events: what a valid one looks like, and a clear error for each bad one.

An event is a JSON object with a user id (``user_id`` by default), an optional ``event`` name, an
optional ``_ts`` (RFC 3339 text or epoch milliseconds; default: now), an optional id (``_id``, or
``messageId`` as Segment and RudderStack clients send it) that makes a repeat of the event a
duplicate, and any other fields, which are merged into the user's profile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import orjson

from workers.pipeline.entries import DATA, Entry, Kind, encode_change
from workers.timefmt import NS_PER_MS, NS_PER_S, parse_rfc3339

MAX_EVENT_BYTES = 64 * 1024
USER_ID_FIELD = "user_id"
EVENT_FIELD = "event"
TS_FIELD = "_ts"
ID_FIELDS = ("_id", "messageId")
"""Where an event's id may be; the first present wins. Neither is merged into the profile."""
MAX_ID_CHARS = 256
_CONTROL_FIELDS = frozenset((EVENT_FIELD, TS_FIELD, *ID_FIELDS))
_MIN_TS = 0
_MAX_TS = 4_102_444_800_000 * NS_PER_MS  # 2100-01-01: anything later is a unit mistake
MAX_FIELD_DEPTH = 252
"""Objects and arrays nested inside one field: orjson encodes at most 254 levels, and the stream
entry and its fields object take two (``{"f": {"field": ...}}``)."""


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one input item was refused; ``where`` is a line number (CLI) or an index (lists)."""

    where: str
    field: str | None
    reason: str

    def __str__(self) -> str:
        field = f" field {self.field!r}:" if self.field else ""
        return f"{self.where}:{field} {self.reason}"

    def as_dict(self) -> dict[str, str | None]:
        return {"at": self.where, "field": self.field, "reason": self.reason}


class Event(NamedTuple):
    """A validated data event, ready to be appended to its user's shard stream. A named tuple,
    immutable as a frozen dataclass but made in a third of the time: one per incoming event."""

    user_id: str
    name: str | None
    ts: int
    fields: dict[str, Any]
    event_id: str | None
    entry: bytes
    """The stream entry exactly as it is stored (``Entry.encode``): validation made it, so what
    was validated is what is stored."""


class Invalid(ValueError):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _user_id(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if value is None:
        raise Invalid(field, "is missing; every event needs the user it belongs to")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid(field, f"must be a string or an integer, not {type(value).__name__}")
    text = str(value)
    if not text.strip() or len(text) > 256:
        raise Invalid(field, "must be 1 to 256 characters and not blank")
    return text


def _event_id(raw: dict[str, Any]) -> str | None:
    for name in ID_FIELDS:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Invalid(name, f"must be a string or an integer, not {type(value).__name__}")
        text = str(value)
        if not text or len(text) > MAX_ID_CHARS:
            raise Invalid(name, f"must be 1 to {MAX_ID_CHARS} characters")
        return text
    return None


def parse_ts(value: Any, now: int) -> int:
    """``_ts`` as ns: RFC 3339 text or epoch ms (int or float); absent means ``now``."""
    if value is None:
        return now
    if isinstance(value, bool):
        raise Invalid(TS_FIELD, "must be RFC 3339 text or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if not -1e16 < value < 1e16:  # also NaN and infinities
            raise Invalid(
                TS_FIELD, f"{value!r} is outside 1970..2100 (epoch milliseconds expected)"
            )
        ts = int(value * NS_PER_MS)
    elif isinstance(value, str):
        try:
            ts = parse_rfc3339(value)
        except ValueError:
            raise Invalid(
                TS_FIELD, f"{value[:40]!r} is not RFC 3339 (e.g. 2026-11-27T09:30:00Z)"
            ) from None
    else:
        raise Invalid(
            TS_FIELD, f"must be RFC 3339 text or epoch milliseconds, not {type(value).__name__}"
        )
    if not _MIN_TS <= ts < _MAX_TS:
        raise Invalid(TS_FIELD, f"{value!r} is outside 1970..2100 (epoch milliseconds expected)")
    return ts


def _ahead(ns: int) -> str:
    seconds = ns // NS_PER_S
    if seconds >= 2 * 86_400:
        return f"{seconds // 86_400:,} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"


def validate(
    raw: Any,
    now: int,
    size: int | None = None,
    user_field: str = USER_ID_FIELD,
    max_ahead_s: int | None = None,
    max_fields: int | None = None,
    kind: Kind = DATA,
) -> Event:
    """Turn one decoded JSON value into an Event, or raise Invalid naming the field and reason.

    ``max_ahead_s``: how far ``_ts`` may be ahead of ``now`` (a 2099 timestamp would win every
    later update of the fields it set); ``max_fields``: the most fields a profile may hold, so
    an event with more can never be applied; ``kind``: the stream entry it becomes (a score
    update keeps no event name), encoded here so the bytes checked are the bytes stored.
    """
    if not isinstance(raw, dict):
        raise Invalid(None, f"an event must be a JSON object, not {type(raw).__name__}")
    if size is not None and size > MAX_EVENT_BYTES:  # known from the input line: no parsing
        raise Invalid(None, f"event is {size:,} bytes; the limit is {MAX_EVENT_BYTES:,}")
    user_id = _user_id(raw, user_field)
    name = raw.get(EVENT_FIELD)
    if name is not None and (not isinstance(name, str) or not name):
        raise Invalid(EVENT_FIELD, "must be a non-empty string naming what happened")
    ts = parse_ts(raw.get(TS_FIELD), now)
    if max_ahead_s is not None and ts > now + max_ahead_s * NS_PER_S:
        raise Invalid(
            TS_FIELD,
            f"is {_ahead(ts - now)} ahead of the server clock; at most {_ahead(max_ahead_s * NS_PER_S)}"
            " ahead is accepted (AUDIENCEHUB_MAX_FUTURE_SKEW)",
        )
    event_id = _event_id(raw)
    fields = {k: v for k, v in raw.items() if k not in _CONTROL_FIELDS}
    fields.pop(user_field, None)
    fields[USER_ID_FIELD] = user_id
    if max_fields is not None and len(fields) > max_fields:
        raise Invalid(
            None,
            f"event has {len(fields):,} fields; a profile holds at most {max_fields:,} "
            "(AUDIENCEHUB_MAX_PROFILE_FIELDS)",
        )
    kept_name = name if kind == DATA else None
    try:  # values a JSON parser accepts but we could not store: deep nesting, huge ints
        stored = encode_change(kind, user_id, ts, kept_name, fields)
    except orjson.JSONEncodeError:
        raise _unstorable(Entry(kind, user_id, ts, kept_name, fields)) from None
    if len(stored) > MAX_EVENT_BYTES:
        raise Invalid(None, f"event is {len(stored):,} bytes; the limit is {MAX_EVENT_BYTES:,}")
    for key in fields:
        if not key or len(key) > 256:
            raise Invalid(key[:40] or "(empty)", "field names must be 1 to 256 characters")
    return Event(user_id, name, ts, fields, event_id, stored)


def _unstorable(entry: Entry) -> Invalid:
    """Which field cannot be encoded, and why, in the words a sender can act on."""
    for key, value in (entry.fields or {}).items():
        try:
            replace(entry, fields={key: value}).encode()
        except orjson.JSONEncodeError as exc:
            if "Recursion" in str(exc):
                reason = f"is nested deeper than {MAX_FIELD_DEPTH} levels; flatten it"
            elif "64-bit" in str(exc):
                reason = "holds an integer beyond 64 bits; send it as a string"
            else:
                reason = f"holds a value JSON cannot hold ({exc})"
            return Invalid(str(key)[:40], f"cannot be stored: {reason}")
    return Invalid(None, "cannot be stored as JSON")
