"""Explain a stored user's memberships: each audience's filter tree, the stored state, what's next.

The drain stores only outcomes (the instant a user entered, the next instant an answer may flip).
An operator asking "why is this user in, or not in?" needs the reason next to them: the filter as a
tree with every clause's value for this user, computed by the very compiled filters the drain runs
(:func:`workers.filterql.explain.explain`), beside what is stored, and a word when the two differ
(a due flip not applied yet, events not drained yet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.audiences.registry import LiveAudience
from workers.audiences.registry_store import NotFound
from workers.audiences.store import AudienceStore
from workers.filterql.explain import explain, rfc
from workers.pipeline.profiles import stored_profile

if TYPE_CHECKING:
    from workers.engine import Engine


def _audiences(engine: Engine, refs: list[str] | None) -> list[LiveAudience]:
    live = engine.registry.get().audiences
    if not refs:
        return sorted(live.values(), key=lambda a: a.slug)
    store = AudienceStore(engine.r, engine.keys)
    out: list[LiveAudience] = []
    for ref in refs:
        audience = store.get(ref)  # NotFound names the ref
        found = live.get(audience.id)
        if found is None:
            raise NotFound(f"audience {ref!r} is not in the registry yet; try again")
        if found not in out:
            out.append(found)
    return out


def _disagreement(inside: bool, stored: bool, due: int | None, at: int, now: int) -> str | None:
    """Why the stored membership differs from the answer at ``at``, as far as it can be told."""
    if inside == stored:
        return None
    if due is not None and due <= at:
        return (
            f"a flip was due at {rfc(due)} and has not been applied yet (beat releases due "
            "users to the drainer)"
        )
    if at != now:
        return f"the stored state is for now ({rfc(now)}), not for {rfc(at)}"
    return (
        "the stored state is from the user's last evaluation: events not drained yet, or the "
        "audience's filter changed since"
    )


def explain_user(
    engine: Engine, user_id: str, audience_refs: list[str] | None = None, at: int | None = None
) -> list[dict[str, Any]]:
    """Explain the user's membership of each audience (all, or those named by id or slug).

    One JSON-able dict per audience, sorted by slug when all are asked for (else in the order
    given); see docs/filterql.md "Explain" for the shape. ``at`` (ns) defaults to the engine's now.
    Raises NotFound for an unknown user or audience.
    """
    profile = stored_profile(engine, user_id)
    audiences = _audiences(engine, audience_refs)
    now = engine.clock.now_ns()
    when = now if at is None else at
    out: list[dict[str, Any]] = []
    for a in audiences:
        e = explain(a.filter, profile, when)
        entered = profile.membership.get(a.id)
        due = profile.next_change.get(a.id)
        stored_in = entered is not None
        explained = e.as_dict()
        out.append(
            {
                "audience": {"id": a.id, "slug": a.slug},
                "user_id": user_id,
                "at": rfc(when),
                "at_ns": when,
                "in": e.matches,
                "stored": {
                    "in": stored_in,
                    "enter": rfc(entered) if entered is not None else None,
                    "enter_ns": entered,
                    "next_change": rfc(due) if due is not None else None,
                    "next_change_ns": due,
                },
                "agrees": e.matches == stored_in,
                "disagreement": _disagreement(e.matches, stored_in, due, when, now),
                "filter": explained["filter"],
                "time_dependent": explained["time_dependent"],
                "tree": explained["tree"],
                "next_change": explained["next_change"],
            }
        )
    return out
