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
from collections.abc import Container, Mapping, Sequence
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson

from workers.jobs.store import Job
from workers.pipeline.membership import Transition
from workers.pipeline.profile import Profile
from workers.timefmt import far_future, format_rfc3339, rfc3339_and_far_future

_enter_text = lru_cache(maxsize=65_536)(format_rfc3339)
"""Enter times repeat (a member's enter is carried in each of its later messages): formatted
once per process while they stay in the cache."""

_CREATED, _MODIFIED, _USER_ID, _FIELD = range(4)


class _JobPlan:
    """What every message of one job shares, worked out once per job (not per message): the
    audiences' positions, how each field is read, and the bytes ``meta`` starts with."""

    __slots__ = ("fields", "job", "meta_head", "order", "unique")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.order = {aid: i for i, aid in enumerate(job.audiences)}
        self.unique = len(self.order) == len(job.audiences)
        special = {"_created": _CREATED, "_modified": _MODIFIED, "user_id": _USER_ID}
        self.fields = tuple((name, special.get(name, _FIELD)) for name in job.fields)
        # ``"meta":{...}`` byte for byte as orjson writes it: the timestamp (RFC 3339 text,
        # nothing to escape) and the closing braces follow per message.
        self.meta_head = (
            b',"meta":{"object":"user","subscription_id":'
            + orjson.dumps(job.id)
            + b',"timestamp":"'
        )


_plans: dict[str, _JobPlan] = {}


def _plan(job: Job) -> _JobPlan:
    """The job's plan, rebuilt when the registry hands out a new Job object for it (keyed by
    id and checked by identity: hashing a Job hashes all its audiences)."""
    plan = _plans.get(job.id)
    if plan is None or plan.job is not job:
        if len(_plans) >= 1024:
            _plans.clear()
        plan = _plans[job.id] = _JobPlan(job)
    return plan


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


def _planned_data(profile: Profile, plan: _JobPlan) -> dict[str, Any]:
    """:func:`user_data` of the plan's job, each field's kind decided once per job."""
    data: dict[str, Any] = {}
    values = profile.fields
    for name, kind in plan.fields:
        if kind == _FIELD:
            if name in values:
                data[name] = values[name]
        elif kind == _CREATED:
            data[name] = format_rfc3339(profile.created)
        elif kind == _MODIFIED:
            data[name] = format_rfc3339(profile.modified)
        else:
            data[name] = profile.user_id
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
    if future is None:
        future = far_future(at)
    return _current(_plan(job), membership, changed, slugs, future)


def _current(
    plan: _JobPlan,
    membership: Mapping[str, int],
    changed: Sequence[Transition],
    slugs: Mapping[str, str],
    future: str,
) -> list[dict[str, str]]:
    """:func:`current_memberships`; walks whichever is shorter, the user's memberships or the
    job's audiences (a user is in a few of a job's many audiences), in the job's order."""
    if len(changed) == 1:
        moved: Container[str] = (changed[0].audience,)
    else:
        moved = {t.audience for t in changed}
    order = plan.order
    if plan.unique and len(membership) < len(order):
        found = [
            (pos, aid)
            for aid in membership
            if (pos := order.get(aid)) is not None and aid not in moved and aid in slugs
        ]
        if len(found) > 1:
            found.sort()
        aids = [aid for _, aid in found]
    else:
        aids = [
            aid
            for aid in plan.job.audiences
            if aid in membership and aid not in moved and aid in slugs
        ]
    return [
        {
            "id": aid,
            "event": "enter",
            "enter": _enter_text(membership[aid]),
            "exit": future,
            "slug": slugs[aid],
        }
        for aid in aids
    ]


def _render(
    plan: _JobPlan,
    profile: Profile,
    transitions: Sequence[Transition],
    membership: Mapping[str, int] | None,
    slugs: Mapping[str, str],
    at: int,
    timestamp: str,
    future: str,
) -> tuple[bytes, str]:
    """``timestamp`` and ``future``: ``at``'s text and far-future exit. A change's own enter (or
    exit) is usually ``at`` itself, whose text is at hand already."""
    job = plan.job
    data = _planned_data(profile, plan)
    if len(transitions) > 1:
        order = plan.order
        last = len(order)
        ordered: Sequence[Transition] = sorted(
            transitions, key=lambda t: order.get(t.audience, last)
        )
    else:
        ordered = transitions
    events = []
    for t in ordered:
        events.append(
            {
                "id": t.audience,
                "event": t.event,
                "enter": timestamp if t.enter == at else _enter_text(t.enter),
                "exit": future
                if t.exit is None
                else timestamp
                if t.exit == at
                else format_rfc3339(t.exit),
                "slug": t.slug,
            }
        )
    if not job.changes_only:
        members = profile.membership if membership is None else membership
        if members:
            events += _current(plan, members, transitions, slugs, future)
    data["segment_events"] = events
    body = b'{"data":' + orjson.dumps(data) + plan.meta_head + timestamp.encode() + b'"}}'
    return body, idempotency_key(job.id, profile.user_id, transitions)


class Renderer:
    """Messages of one job at one instant. What all of them share (the exit a current member
    carries, the ``meta`` object) is rendered once, so a backfill page renders only what
    differs from user to user."""

    __slots__ = ("_future", "_plan", "_tail", "_timestamp", "at", "job", "slugs")

    def __init__(self, job: Job, at: int, slugs: Mapping[str, str]) -> None:
        self.job = job
        self.at = at
        self.slugs = slugs
        self._plan = _plan(job)
        self._timestamp, self._future = rfc3339_and_far_future(at)
        # ``,"meta":{...}}``: what follows ``data`` in every message of the job at ``at``.
        self._tail = self._plan.meta_head + self._timestamp.encode() + b'"}}'

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
        return _render(
            self._plan,
            profile,
            transitions,
            membership,
            self.slugs,
            self.at,
            self._timestamp,
            self._future,
        )


def _enter_json(ns: int) -> bytes:
    """An enter time as orjson writes the string (RFC 3339 text holds nothing to escape).

    Not cached, unlike :data:`_enter_text`: a backfilled member's enter time is nearly always
    its own (drains record strictly increasing instants), so a cache missed on almost every
    member, and a full 65,536-entry one cost more per miss (two caches deep) than the
    formatting: a backfill page's CPU per member 14.1 -> 10.2-10.7 us."""
    return b'"' + format_rfc3339(ns).encode() + b'"'


class EnterRenderer:
    """A backfill page's messages: every audience in them is an ``enter`` with the stored enter
    time and the far-future exit, so each audience's segment event is rendered once, around the
    time, and a message is spliced from those parts. Byte for byte what :class:`Renderer` writes
    for the same transitions (tests/test_message.py holds them side by side): the format is the
    seed's and never changes here.
    """

    __slots__ = (
        "_current",
        "_fallback",
        "_moved",
        "_moved_slugs",
        "_plan",
        "_segment_field",
        "_tail",
        "job",
    )

    def __init__(
        self, job: Job, at: int, slugs: Mapping[str, str], moved_slugs: Mapping[str, str]
    ) -> None:
        """``moved_slugs``: the slug each backfilled audience's transition carries."""
        self.job = job
        self._moved_slugs = dict(moved_slugs)
        self._fallback = Renderer(job, at, slugs)
        self._plan = self._fallback._plan
        self._segment_field = "segment_events" in job.fields
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
        if self._segment_field and "segment_events" in profile.fields:
            # A field of that name keeps its place in ``data``: the general way.
            changes = [
                Transition(aid, self._moved_slugs[aid], "enter", membership[aid], None)
                for aid in moved
            ]
            return self._fallback.render(profile, changes)
        data = _planned_data(profile, self._plan)
        events = []
        for aid in moved:
            head, tail = self._moved[aid]
            events.append(head + _enter_json(membership[aid]) + tail)
        if not job.changes_only and len(membership) > len(moved):
            current = self._current
            for aid in job.audiences:
                if aid in membership and aid in current and aid not in moved:
                    head, tail = current[aid]
                    events.append(head + _enter_json(membership[aid]) + tail)
        opening = orjson.dumps(data)[:-1] + b"," if data else b"{"
        body = b"".join(
            (b'{"data":', opening, b'"segment_events":[', b",".join(events), self._tail)
        )
        return body, enters_key(job.id, profile.user_id, moved, membership)


def enters_key(
    job_id: str, user_id: str, moved: Sequence[str], membership: Mapping[str, int]
) -> str:
    """:func:`idempotency_key` of enters (no exit time) of ``moved`` at their stored times."""
    if len(moved) == 1:  # the usual case, without the list and the join
        aid = moved[0]
        text = f"{job_id}|{user_id}|{aid}:enter:{membership[aid]}:"
    else:
        parts = [job_id, user_id]
        for aid in sorted(moved):
            parts.append(f"{aid}:enter:{membership[aid]}:")
        text = "|".join(parts)
    digest = _BLAKE2B_16.copy()  # (a copy: cheaper than parsing digest_size each time)
    digest.update(text.encode())
    return digest.hexdigest()


_BLAKE2B_16 = blake2b(digest_size=16)


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
    timestamp, future = rfc3339_and_far_future(at)
    return _render(_plan(job), profile, transitions, membership, slugs, at, timestamp, future)


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
