"""The message a hub receives: exactly the seed's envelope, rendered at the moment of change.

Rendering happens inside the drain, so ``data`` holds the user's fields as they were when the
user moved, whatever happens to the profile before the message is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from workers.jobs import Job
from workers.membership import Transition
from workers.profile import Profile
from workers.timefmt import far_future, format_rfc3339


def segment_event(t: Transition, at: int) -> dict[str, str]:
    return {
        "id": t.audience,
        "event": t.event,
        "enter": format_rfc3339(t.enter),
        "exit": format_rfc3339(t.exit) if t.exit is not None else far_future(at),
        "slug": t.slug,
    }


def user_data(profile: Profile, fields: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in fields:
        if name == "_created":
            data[name] = format_rfc3339(profile.created)
        elif name == "_modified":
            data[name] = format_rfc3339(profile.modified)
        elif name == "user_id":
            data[name] = profile.user_id
        elif name in profile.fields:
            data[name] = profile.fields[name]
    return data


def render(
    job: Job, profile: Profile, transitions: Sequence[Transition], at: int
) -> tuple[bytes, str]:
    """The message body and its idempotency key for one user's changes at one instant."""
    data = user_data(profile, job.fields)
    data["segment_events"] = [segment_event(t, at) for t in transitions]
    body = orjson.dumps(
        {
            "data": data,
            "meta": {"object": "user", "subscription_id": job.id, "timestamp": format_rfc3339(at)},
        }
    )
    return body, idempotency_key(job.id, profile.user_id, transitions)


def idempotency_key(job_id: str, user_id: str, transitions: Sequence[Transition]) -> str:
    """Same (job, user, transitions) -> same key, so consumers can drop re-sent duplicates.

    A transition is named by audience, direction and the membership's enter time (plus the exit
    time for an exit), so a backfilled enter and the live enter of one membership share a key.
    """
    parts = [job_id, user_id]
    for t in sorted(transitions, key=lambda t: (t.audience, t.event)):
        parts.append(f"{t.audience}:{t.event}:{t.enter}:{t.exit if t.exit is not None else ''}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()
