"""The message a hub receives: exactly the seed's envelope, rendered at the moment of change.

Rendering happens inside the drain, so ``data`` holds the user's fields as they were when the
user moved, whatever happens to the profile before the message is sent.

``segment_events`` holds, as in the seed's example, every audience of the job that changed in
this evaluation and then every other audience of the job the user is in at that moment (each
part in the job's order of audiences) (an
``enter`` with its original enter time and an exit in 2099). A job made with ``changes_only``
carries the changes alone. Either way the idempotency key names only the changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson

from workers.jobs.store import Job
from workers.pipeline.membership import Transition
from workers.pipeline.profile import Profile
from workers.timefmt import far_future, format_rfc3339

_enter_text = lru_cache(maxsize=65_536)(format_rfc3339)
"""Enter times repeat (a member's enter is carried in each of its later messages): formatted
once per process while they stay in the cache."""


@lru_cache(maxsize=256)
def _job_order(audiences: tuple[str, ...]) -> dict[str, int]:
    """A job's audiences by position (the order a message lists them in)."""
    return {aid: i for i, aid in enumerate(audiences)}


def segment_event(t: Transition, at: int, future: str | None = None) -> dict[str, str]:
    """``future``: ``far_future(at)`` when the caller has it already."""
    if t.exit is not None:
        exit_text = format_rfc3339(t.exit)
    else:
        exit_text = future if future is not None else far_future(at)
    return {
        "id": t.audience,
        "event": t.event,
        "enter": _enter_text(t.enter),
        "exit": exit_text,
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


def current_memberships(
    job: Job,
    membership: Mapping[str, int],
    changed: Sequence[Transition],
    slugs: Mapping[str, str],
    at: int,
    future: str | None = None,
) -> list[dict[str, str]]:
    """The job's other audiences the user is in at ``at``, as the seed shows an unchanged one.
    ``future``: ``far_future(at)`` when the caller has it already."""
    moved = {t.audience for t in changed}
    if future is None:
        future = far_future(at)
    return [
        {
            "id": aid,
            "event": "enter",
            "enter": _enter_text(membership[aid]),
            "exit": future,
            "slug": slugs[aid],
        }
        for aid in job.audiences
        if aid in membership and aid not in moved and aid in slugs
    ]


class Renderer:
    """Messages of one job at one instant. What all of them share (the exit a current member
    carries, the ``meta`` object) is rendered once, so a backfill page renders only what
    differs from user to user."""

    __slots__ = ("_future", "_order", "_tail", "at", "job", "slugs")

    def __init__(self, job: Job, at: int, slugs: Mapping[str, str]) -> None:
        self.job = job
        self.at = at
        self.slugs = slugs
        self._future = far_future(at)
        self._order = _job_order(job.audiences)
        meta = {"object": "user", "subscription_id": job.id, "timestamp": format_rfc3339(at)}
        # ``{"data": ..., "meta": ...}`` byte for byte as orjson writes the whole object.
        self._tail = b',"meta":' + orjson.dumps(meta) + b"}"

    def render(
        self,
        profile: Profile,
        transitions: Sequence[Transition],
        membership: Mapping[str, int] | None = None,
    ) -> tuple[bytes, str]:
        """The message body and its idempotency key for one user's changes at ``at``.

        ``membership`` is the user's audiences at ``at`` (default: the profile's, which is right
        unless later instants have been applied to the profile since).
        """
        job, at, future = self.job, self.at, self._future
        data = user_data(profile, job.fields)
        if len(transitions) > 1:
            order = self._order
            ordered = sorted(transitions, key=lambda t: order.get(t.audience, len(order)))
        else:
            ordered = list(transitions)
        events = [segment_event(t, at, future) for t in ordered]
        if not job.changes_only:
            members = profile.membership if membership is None else membership
            events += current_memberships(job, members, transitions, self.slugs, at, future)
        data["segment_events"] = events
        body = b'{"data":' + orjson.dumps(data) + self._tail
        return body, idempotency_key(job.id, profile.user_id, transitions)


@lru_cache(maxsize=65_536)
def _enter_json(ns: int) -> bytes:
    """An enter time as orjson writes the string (cached like :data:`_enter_text`)."""
    return orjson.dumps(_enter_text(ns))


class EnterRenderer:
    """A backfill page's messages: every audience in them is an ``enter`` with the stored enter
    time and the far-future exit, so each audience's segment event is rendered once, around the
    time, and a message is spliced from those parts. Byte for byte what :class:`Renderer` writes
    for the same transitions (tests/test_message.py holds them side by side): the format is the
    seed's and never changes here.
    """

    __slots__ = ("_current", "_fallback", "_moved", "_moved_slugs", "_tail", "job")

    def __init__(
        self, job: Job, at: int, slugs: Mapping[str, str], moved_slugs: Mapping[str, str]
    ) -> None:
        """``moved_slugs``: the slug each backfilled audience's transition carries."""
        self.job = job
        self._moved_slugs = dict(moved_slugs)
        self._fallback = Renderer(job, at, slugs)
        self._tail = b"]}" + self._fallback._tail
        exit_json = orjson.dumps(far_future(at))

        def parts(aid: str, slug: str) -> tuple[bytes, bytes]:
            head = b'{"id":' + orjson.dumps(aid) + b',"event":"enter","enter":'
            return head, b',"exit":' + exit_json + b',"slug":' + orjson.dumps(slug) + b"}"

        self._moved = {aid: parts(aid, slug) for aid, slug in moved_slugs.items()}
        self._current = {aid: parts(aid, slugs[aid]) for aid in job.audiences if aid in slugs}

    def render(self, profile: Profile, moved: Sequence[str]) -> tuple[bytes, str]:
        """The message and idempotency key of ``moved`` (audiences of the job, in its order,
        each an enter at the profile's stored enter time); the user's other audiences of the
        job follow as :func:`current_memberships` lists them."""
        job = self.job
        membership = profile.membership
        data = user_data(profile, job.fields)
        if "segment_events" in data:  # a field of that name keeps its place: the general way
            changes = [
                Transition(aid, self._moved_slugs[aid], "enter", membership[aid], None)
                for aid in moved
            ]
            return self._fallback.render(profile, changes)
        events = []
        for aid in moved:
            head, tail = self._moved[aid]
            events.append(head + _enter_json(membership[aid]) + tail)
        if not job.changes_only:
            current = self._current
            for aid in job.audiences:
                if aid in membership and aid in current and aid not in moved:
                    head, tail = current[aid]
                    events.append(head + _enter_json(membership[aid]) + tail)
        opening = orjson.dumps(data)[:-1] + b"," if data else b"{"
        body = b'{"data":' + opening + b'"segment_events":[' + b",".join(events) + self._tail
        return body, enters_key(job.id, profile.user_id, moved, membership)


def enters_key(
    job_id: str, user_id: str, moved: Sequence[str], membership: Mapping[str, int]
) -> str:
    """:func:`idempotency_key` of enters (no exit time) of ``moved`` at their stored times."""
    parts = [job_id, user_id]
    for aid in sorted(moved) if len(moved) > 1 else moved:
        parts.append(f"{aid}:enter:{membership[aid]}:")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def render(
    job: Job,
    profile: Profile,
    transitions: Sequence[Transition],
    at: int,
    slugs: Mapping[str, str],
    membership: Mapping[str, int] | None = None,
) -> tuple[bytes, str]:
    """The message body and its idempotency key for one user's changes at one instant
    (``slugs`` names audiences; ``membership``: see :meth:`Renderer.render`)."""
    return Renderer(job, at, slugs).render(profile, transitions, membership)


def idempotency_key(job_id: str, user_id: str, transitions: Sequence[Transition]) -> str:
    """Same (job, user, transitions) -> same key, so consumers can drop re-sent duplicates.

    A transition is named by audience, direction and the membership's enter time (plus the exit
    time for an exit), so a backfilled enter and the live enter of one membership share a key.
    """
    parts = [job_id, user_id]
    if len(transitions) > 1:
        transitions = sorted(transitions, key=lambda t: (t.audience, t.event))
    for t in transitions:
        parts.append(f"{t.audience}:{t.event}:{t.enter}:{t.exit if t.exit is not None else ''}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()
