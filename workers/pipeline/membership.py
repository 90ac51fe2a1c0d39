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
    changes: list[Transition] = []
    for a in audiences:
        inside = a.filter.matches(profile, at)
        entered = profile.membership.get(a.id)
        if inside and entered is None:
            profile.membership[a.id] = at
            profile.recorded.pop(a.id, None)
            changes.append(Transition(a.id, a.slug, "enter", at, None))
        elif not inside and entered is not None:
            del profile.membership[a.id]
            profile.recorded.pop(a.id, None)
            changes.append(Transition(a.id, a.slug, "exit", entered, at))
        flip = a.filter.next_change(profile, at) if a.filter.time_dependent else None
        if flip is None or flip <= at:
            profile.next_change.pop(a.id, None)
        else:
            profile.next_change[a.id] = flip
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
    """Drop state about audiences that were deleted, so they neither fire nor linger."""
    for table in (profile.membership, profile.next_change, profile.recorded):
        for aid in [aid for aid in table if aid not in snapshot.audiences]:
            del table[aid]
