"""Deleting an audience, only when nothing depends on it.

Refused while a job that is not stopped exports it (its consumers would silently stop getting
triggers) or another audience INCLUDEs it (that audience could no longer compile, and with it the
registry every drain evaluates against). Members get no ``exit`` message: no live job exports the
audience, and each profile drops the stale membership on its next drain (``forget_unknown``).

The checks and the delete are one compare-and-set on the registry version (every definition
change bumps it), so an audience or job created in between makes the delete retry its checks.
An audience created by a writer that compiled its filter before the delete and stored it after
is caught by compiling the remaining set once more: the delete is then undone (lossless, since no
drain can build a registry while that set fails to compile) and refused.
"""

from __future__ import annotations

from dataclasses import asdict

from workers.audiences.registry_store import Conflict
from workers.audiences.sizes import AudienceSizes
from workers.audiences.store import Audience, AudienceStore
from workers.engine import Engine
from workers.filterql import FilterQLError, compile_set
from workers.jobs.store import JobStore
from workers.lua import script
from workers.pipeline.member_index import MemberIndex

ATTEMPTS = 5


def _includers(audience: Audience, others: list[Audience]) -> list[str]:
    wanted = audience.slug.lower()
    return [a.slug for a in others if any(s.lower() == wanted for s in a.includes)]


def _check(engine: Engine, audience: Audience) -> None:
    e = engine
    users = [
        j.id
        for j in JobStore(e.r, e.keys).all()
        if audience.id in j.audiences and j.state != "stopped"
    ]
    if users:
        raise Conflict(
            f"audience {audience.slug!r} is exported by job(s) {', '.join(users)}; stop them "
            "first (POST /jobs/{id}/stop or 'audiencehub job stop JOB')"
        )
    others = [a for a in AudienceStore(e.r, e.keys).all() if a.id != audience.id]
    includers = _includers(audience, others)
    try:
        compile_set({a.slug: a.filter for a in others})
    except FilterQLError:
        includers = includers or ["another audience"]
    if includers:
        raise Conflict(
            f"audience {audience.slug!r} is included by {', '.join(includers)}; change their "
            "filters so they no longer INCLUDE it, then delete it"
        )


def delete_audience(engine: Engine, id_or_slug: str) -> Audience:
    """Remove the definition and its member indexes; returns what was deleted."""
    e = engine
    store = AudienceStore(e.r, e.keys)
    delete = script(e.r, "audience_delete")
    for _ in range(ATTEMPTS):
        version = e.r.get(e.keys.registry_version) or b"0"
        audience = store.get(id_or_slug)
        _check(e, audience)
        keys = [e.keys.registry_version, e.keys.audiences, e.keys.audience_slugs]
        if delete(keys=keys, args=[version, audience.id, audience.slug]):
            break
    else:
        raise Conflict("audiences or jobs kept changing while deleting; try again")
    remaining = {a.slug: a.filter for a in store.all()}
    try:
        compile_set(remaining)
    except FilterQLError:
        # A concurrent create/update that still saw this audience now INCLUDEs it: put it back.
        store.raw_put(audience.id, asdict(audience))
        e.r.hsetnx(e.keys.audience_slugs, audience.slug, audience.id)
        raise Conflict(
            f"audience {audience.slug!r} was included by an audience saved while deleting it; "
            "it was kept"
        ) from None
    pipe = e.r.pipeline(transaction=False)  # member indexes live in every shard's cluster slot
    for shard in range(e.cfg.shards):
        MemberIndex(e.keys, shard, audience.id).delete(pipe)
    pipe.execute()
    AudienceSizes(e).forget(audience.id)
    return audience
