"""Membership: evaluate audiences for a profile at an instant and record who moved in or out.

``evaluate`` is the one place membership changes. ``catch_up`` replays the instants at which
answers flip with no new data (window ends, date math), so each exit or enter carries the moment
it actually happened, whether beat released the user on time or a data event got there first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from workers.audiences.registry import LiveAudience, Snapshot
from workers.pipeline.profile import Profile

MAX_CATCH_UP_STEPS = 10_000
"""Guard against a filter whose next change never moves forward; far above any real need."""


@dataclass(frozen=True, slots=True)
class Transition:
    audience: str
    slug: str
    event: Literal["enter", "exit"]
    enter: int
    exit: int | None


def evaluate(profile: Profile, audiences: Iterable[LiveAudience], at: int) -> list[Transition]:
    # The drain's innermost loop (once per audience an entry can affect): the profile's tables
    # are bound to locals once.
    changes: list[Transition] = []
    membership = profile.membership
    next_change = profile.next_change
    recorded = profile.recorded
    for a in audiences:
        f = a.filter
        aid = a.id
        direct = f.unscoped_evaluate
        inside = direct(profile, at) is True if direct is not None else f.matches(profile, at)
        entered = membership.get(aid)
        if inside:
            if entered is None:
                membership[aid] = at
                if recorded:
                    recorded.pop(aid, None)
                changes.append(Transition(aid, a.slug, "enter", at, None))
        elif entered is not None:
            del membership[aid]
            if recorded:
                recorded.pop(aid, None)
            changes.append(Transition(aid, a.slug, "exit", entered, at))
        if f.time_dependent:
            flip = f.next_change(profile, at)
            if flip is not None and flip > at:
                next_change[aid] = flip
                continue
        if next_change:
            next_change.pop(aid, None)
    return changes


@dataclass(frozen=True, slots=True)
class Step:
    """A time-driven change: its instant, what moved, and the memberships right after it."""

    at: int
    changes: list[Transition]
    membership: dict[str, int]


def catch_up(profile: Profile, snapshot: Snapshot, until: int) -> tuple[list[Step], int]:
    """Apply every time-driven flip due at or before ``until``, each at its own instant.

    Returns the steps that changed something and how many evaluations it took.
    """
    steps: list[Step] = []
    evaluations = 0
    for _ in range(MAX_CATCH_UP_STEPS):
        if not profile.next_change:
            break
        at = min(profile.next_change.values())
        if at > until:
            break
        due = [aid for aid, t in profile.next_change.items() if t == at]
        live = [snapshot.audiences[aid] for aid in due if aid in snapshot.audiences]
        for aid in due:
            profile.next_change.pop(aid, None)
        changes = evaluate(profile, live, at)
        evaluations += len(live)
        if changes:
            for t in changes:  # recorded now (``until``), though it happened at ``at``
                if t.event == "enter" and until > at:
                    profile.recorded[t.audience] = until
            steps.append(Step(at, changes, dict(profile.membership)))
    return steps, evaluations


def forget_unknown(profile: Profile, snapshot: Snapshot) -> None:
    """Drop state about audiences that were deleted, so they neither fire nor linger.

    Once per profile per drain batch: a table whose ids are all known (nearly always) is passed
    by one subset test of the key views, without a loop in Python."""
    known = snapshot.audiences.keys()
    for table in (profile.membership, profile.next_change, profile.recorded):
        if table and not table.keys() <= known:
            for aid in [aid for aid in table if aid not in known]:
                del table[aid]
