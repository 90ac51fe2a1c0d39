"""Incoming events: what a valid one looks like, and a clear error for each bad one.

An event is a JSON object with a user id (``user_id`` by default), an optional ``event`` name, an
optional ``_ts`` (RFC 3339 text or epoch milliseconds; default: now), an optional id (``_id``, or
``messageId`` as Segment and RudderStack clients send it) that makes a repeat of the event a
duplicate, and any other fields, which are merged into the user's profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import repeat
from typing import Any, NamedTuple, cast

import orjson

from workers.pipeline.entries import DATA, Entry, Kind, change_dict
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
_LONG_NAME_BYTES = 258
"""A field name of more than 256 characters encodes as more than this many bytes (quoted)."""
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


def _event_id(first: Any, second: Any) -> str | None:
    """The event's id: the first of its ID_FIELDS present (``first``, ``second``), checked."""
    for name, value in zip(ID_FIELDS, (first, second), strict=True):
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
    (checked,) = validate_many([raw], now, [size], user_field, max_ahead_s, max_fields, kind)
    if isinstance(checked, Invalid):
        raise checked
    return checked


def validate_many(
    values: list[Any],
    now: int,
    sizes: list[int | None] | None = None,
    user_field: str = USER_ID_FIELD,
    max_ahead_s: int | None = None,
    max_fields: int | None = None,
    kind: Kind = DATA,
    owned: bool = False,
) -> list[Event | Invalid]:
    """``validate`` of each value (``sizes``: each one's encoded size, when known): its Event,
    or the Invalid that ``validate`` would have raised, in the same order (a value that already
    is an Invalid stands for itself). ``owned``: the values are the caller's to give away (just
    decoded): an event's fields are its own dict, emptied of the control fields, not a copy.

    The same checks in the same order; only the encoding is shared: every valid event's entry
    in one ``orjson.dumps`` call, cut apart where a separator stands that orjson never writes
    itself (a control byte outside a string). Encoded one call per event and kept, an entry
    took about 0.6 us; in one call with the others, 0.1-0.2 us and the cut. When that one call
    refuses a value (deep nesting, a huge integer: one level deeper inside the list) each event
    is encoded alone, to say which."""
    out, ready = _checked(values, now, sizes, user_field, max_ahead_s, max_fields, kind, owned)
    if not ready:
        return cast(list[Event | Invalid], out)
    encoded: list[bytes] | None = None
    if len(ready) > 1:  # (one alone is one call either way)
        try:
            parts: list[Any] = [_CUT] * (2 * len(ready))
            parts[::2] = [r[5] for r in ready]
            whole = orjson.dumps(parts)
        except orjson.JSONEncodeError:
            pass
        else:
            encoded = whole[1 : -len(_CUT_TAIL)].split(_CUT_BYTES)
            if len(encoded) != len(ready):  # a caller's own orjson.Fragment holding the cut
                encoded = None
    return _finished(out, ready, encoded)


def _finished(
    out: list[Invalid | _Ready], ready: list[_Ready], encoded: list[bytes] | None
) -> list[Event | Invalid]:
    """validate_many's results: each of ``ready`` (the _Readys of ``out``) with its entry
    (``encoded``, or encoded now alone), checked as ``_stored`` checks it, in its place among
    the Invalids of ``out``."""
    done = _events(ready, encoded)
    if len(done) == len(out):  # nothing refused before encoding: nothing to put back in order
        return done
    made = iter(done)
    return [cast(Invalid, item) if type(item) is not tuple else next(made) for item in out]


def _events(ready: list[_Ready], encoded: list[bytes] | None) -> list[Event | Invalid]:
    """Each of ``ready`` as its Event, or the Invalid its entry got (``encoded``: the entries in
    order, or None to encode each alone)."""
    done: list[Event | Invalid] = []
    append = done.append
    entries: Iterable[bytes | None] = repeat(None) if encoded is None else encoded
    for item, stored in zip(ready, entries):  # noqa: B905 (repeat has no end)
        user_id, name, ts, fields, event_id, _ = item
        try:
            if stored is None:
                stored = _encoded(item)
            if len(stored) > _LONG_NAME_BYTES or "" in fields:  # _stored's checks have work
                append(_stored(item, stored))
            else:  # within every limit _stored checks: made here, without a call
                append(_new_tuple(Event, (user_id, name, ts, fields, event_id, stored)))
        except Invalid as exc:
            append(exc)
    return done


_new_tuple = tuple.__new__
_CUT = orjson.Fragment(b"\x00")
"""Put after each entry: ``[e1,\\x00,e2,\\x00]``. orjson writes control bytes only escaped, inside
strings, so a bare one is only ever this separator."""
_CUT_BYTES = b",\x00,"
_CUT_TAIL = b",\x00]"


_Ready = tuple[str, str | None, int, dict[str, Any], str | None, dict[str, Any]]
"""An event that passed every check made before encoding: (user id, name, ts, fields, event
id, its entry to encode). A plain tuple: one per incoming event."""


def _checked(
    values: list[Any],
    now: int,
    sizes: list[int | None] | None,
    user_field: str,
    max_ahead_s: int | None,
    max_fields: int | None,
    kind: Kind,
    owned: bool,
) -> tuple[list[Invalid | _Ready], list[_Ready]]:
    """Every check of ``validate`` made before encoding, of each value in order: its _Ready or
    its Invalid, and the _Readys alone.

    One loop for all the values, not a call per value (a 100-event request is 100 values), and
    the common case takes the short way: a plain string user id, no ``_ts`` or id. Every other
    case goes through the same checks as the helpers above, in the same order, with the same
    words.
    """
    out: list[Invalid | _Ready] = []
    ready: list[_Ready] = []
    latest = None if max_ahead_s is None else now + max_ahead_s * NS_PER_S
    keep_name = kind == DATA
    for i, raw in enumerate(values):
        if type(raw) is not dict and not isinstance(raw, dict):
            # an Invalid was refused before validation (a line that is not JSON)
            out.append(raw if type(raw) is Invalid else _not_an_object(raw))
            continue
        try:
            if sizes is not None:  # known from the input line: no parsing
                size = sizes[i]
                if size is not None and size > MAX_EVENT_BYTES:
                    raise Invalid(
                        None, f"event is {size:,} bytes; the limit is {MAX_EVENT_BYTES:,}"
                    )
            user_id = raw.get(user_field)
            if type(user_id) is not str:
                user_id = _user_id(raw, user_field)
            elif not user_id or len(user_id) > 256 or user_id.isspace():  # as _user_id words it
                raise Invalid(user_field, "must be 1 to 256 characters and not blank")
            # The fields are the event less its control fields, the user id last: popped from
            # the event itself when it is ours, else from a copy; what a pop returns is what
            # raw.get would have.
            fields = raw if owned else dict(raw)
            pop = fields.pop
            name = pop(EVENT_FIELD, None)
            ts_value = pop(TS_FIELD, None)
            first_id = pop(ID_FIELDS[0], None)
            second_id = pop(ID_FIELDS[1], None)
            if name is not None and (not isinstance(name, str) or not name):
                raise Invalid(EVENT_FIELD, "must be a non-empty string naming what happened")
            ts = now if ts_value is None else parse_ts(ts_value, now)
            if latest is not None and ts > latest:
                raise Invalid(
                    TS_FIELD,
                    f"is {_ahead(ts - now)} ahead of the server clock; at most "
                    f"{_ahead(latest - now)} ahead is accepted (AUDIENCEHUB_MAX_FUTURE_SKEW)",
                )
            event_id = (
                None if first_id is None and second_id is None else _event_id(first_id, second_id)
            )
            pop(user_field, None)
            fields[USER_ID_FIELD] = user_id
            if max_fields is not None and len(fields) > max_fields:
                raise Invalid(
                    None,
                    f"event has {len(fields):,} fields; a profile holds at most {max_fields:,} "
                    "(AUDIENCEHUB_MAX_PROFILE_FIELDS)",
                )
        except Invalid as exc:
            out.append(exc)
            continue
        # Encoded later, with the other events' of the request in one call (validate_many).
        entry = change_dict(kind, user_id, ts, name if keep_name else None, fields)
        r = (user_id, name, ts, fields, event_id, entry)
        out.append(r)
        ready.append(r)
    return out, ready


def _not_an_object(raw: Any) -> Invalid:
    """Why a value that is not an object is refused."""
    return Invalid(None, f"an event must be a JSON object, not {type(raw).__name__}")


def _encoded(ready: _Ready) -> bytes:
    entry = ready[5]
    try:  # values a JSON parser accepts but we could not store: deep nesting, huge ints
        return orjson.dumps(entry)
    except orjson.JSONEncodeError:
        user_id, _, ts, fields, _, _ = ready
        raise _unstorable(Entry(entry["k"], user_id, ts, entry.get("n"), fields)) from None


def _stored(ready: _Ready, stored: bytes) -> Event:
    """The checks of ``validate`` made on the encoded entry, then the Event."""
    if len(stored) > MAX_EVENT_BYTES:
        raise Invalid(None, f"event is {len(stored):,} bytes; the limit is {MAX_EVENT_BYTES:,}")
    fields = ready[3]
    # A name over 256 characters takes over 258 bytes of the entry: shorter entries need only
    # the look for an empty name.
    if "" in fields or len(stored) > _LONG_NAME_BYTES:
        for key in fields:
            if not key or len(key) > 256:
                raise Invalid(key[:40] or "(empty)", "field names must be 1 to 256 characters")
    # Event(...) is a Python-level __new__ taking keywords; tuple's own is a third of the time.
    return _new_tuple(Event, (ready[0], ready[1], ready[2], fields, ready[4], stored))


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
