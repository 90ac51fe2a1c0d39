"""The naive baseline for bench/backfill.py: one Celery task and one hub request per user.

This is how an export is often first written; the benchmark runs it beside the real backfill in
the same run so the ratio is measured, not guessed. Not part of the product.
"""

from __future__ import annotations

from functools import cache

from tasks.app import make_app
from workers.delivery.eventhub.rest import RestSender
from workers.delivery.eventhub.sender import OutMessage
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.keys import shard_of
from workers.pipeline.envelope import render
from workers.pipeline.membership import Transition
from workers.pipeline.profile import Profile
from workers.redisconn import as_bytes

app = make_app()


@cache
def _engine() -> Engine:
    return Engine.create()


@cache
def _sender(auth_id: str) -> RestSender:
    e = _engine()
    return RestSender(AuthStore(e.r, e.keys, e.cfg).connection(auth_id))


@app.task(name="bench.naive_export")
def naive_export(job_id: str, user_id: str) -> None:
    e = _engine()
    snapshot = e.registry.get()
    job = snapshot.jobs[job_id]
    blob = as_bytes(e.r.hget(e.keys.users(shard_of(user_id, e.cfg.shards)), user_id))
    profile = Profile.loads(user_id, blob, snapshot.codes)
    moved = [
        Transition(a, snapshot.audiences[a].slug, "enter", profile.membership[a], None)
        for a in job.audiences
        if a in profile.membership
    ]
    body, key = render(job, profile, moved, e.clock.now_ns(), snapshot.slugs)
    _sender(job.auth_id).send([OutMessage(body, user_id, key)])
