"""Reading profiles for people: a stored one, shown plainly, and one written as a JSON document.

One implementation behind ``profile show``, ``GET /profiles/{user}``, explain, ``audience eval
--profile`` and ``POST /audiences/eval``, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from workers.audiences.registry_store import NotFound
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.profile import Profile
from workers.redisconn import as_bytes
from workers.timefmt import format_rfc3339, parse_rfc3339


def stored_profile(engine: Engine, user_id: str) -> Profile:
    """The user's profile as the drain last committed it; NotFound if there is none yet."""
    shard = shard_of(user_id, engine.cfg.shards)
    blob = as_bytes(engine.r.hget(engine.keys.users(shard), user_id))
    if blob is None:
        raise NotFound(
            f"no profile for user {user_id!r} (profiles appear once an event is drained)"
        )
    return Profile.loads(user_id, blob, engine.registry.get().codes)


def describe(engine: Engine, p: Profile) -> dict[str, Any]:
    """Fields, event counts, memberships and next changes, with audiences named by slug."""
    slugs = {a.id: a.slug for a in engine.registry.get().audiences.values()}
    return {
        "user_id": p.user_id,
        "_created": format_rfc3339(p.created),
        "_modified": format_rfc3339(p.modified),
        "fields": p.fields,
        "events": {name: len(times) for name, times in p.occurrences.items()},
        "audiences": {
            slugs.get(aid, aid): {"enter": format_rfc3339(t)} for aid, t in p.membership.items()
        },
        "next_change": {slugs.get(aid, aid): format_rfc3339(t) for aid, t in p.next_change.items()},
    }


class DocumentError(ValueError):
    """A profile document is malformed; ``field`` names where (``_events.purchase``...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _times(value: Any, field: str) -> list[int]:
    out: list[int] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
            continue
        if isinstance(item, str):
            try:
                out.append(parse_rfc3339(item))
                continue
            except ValueError:
                pass
        raise DocumentError(
            field,
            f"{str(item)[:60]!r} is not a time; use RFC 3339 (2026-11-27T09:30:00Z) or "
            "integer nanoseconds since the epoch",
        )
    return sorted(out)


def from_document(data: dict[str, Any]) -> Profile:
    """A profile written by hand: a JSON object of fields, plus optional ``_events`` (event name
    -> occurrence times), ``_created`` and ``_modified``. Raises DocumentError."""
    data = dict(data)
    events = data.pop("_events", None) or {}
    if not isinstance(events, dict):
        raise DocumentError("_events", "must map event names to lists of times")
    occurrences = {str(name): _times(ts, f"_events.{name}") for name, ts in events.items()}
    stamps: dict[str, int] = {}
    for key in ("_created", "_modified"):
        if key in data:
            got = _times(data.pop(key), key)
            stamps[key] = got[0] if got else 0
    fields = {k: v for k, v in data.items() if v is not None}
    return Profile(
        user_id=str(fields.get("user_id", "profile")),
        fields=fields,
        occurrences=occurrences,
        created=stamps.get("_created", 0),
        modified=stamps.get("_modified", 0),
    )
