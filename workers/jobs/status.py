"""What ``job show``, the API and the dashboard say about a job: one function, one truth."""

from __future__ import annotations

import time
from typing import Any, cast

import orjson

from workers.audiences.registry_store import NotFound
from workers.delivery.hub_partitions import HubPartitions
from workers.delivery.outbox import Outbox, head_time_ms
from workers.engine import Engine
from workers.jobs.backfill import Backfills
from workers.jobs.control import JobControl
from workers.jobs.store import STATES, Job
from workers.timefmt import NS_PER_MS, format_rfc3339

RATE_BUCKET_S = 10
RATE_KEEP_BUCKETS = 400  # a little over an hour


def count_sent(engine: Engine, job_id: str, n: int, pipe: Any) -> None:
    """Add ``n`` to the current 10-second bucket (and drop the bucket that fell out of the hour)."""
    bucket = int(time.time()) // RATE_BUCKET_S
    pipe.hincrby(engine.keys.job_rate(job_id), bucket, n)
    pipe.hdel(engine.keys.job_rate(job_id), bucket - RATE_KEEP_BUCKETS)


def throughput(engine: Engine, job_id: str, seconds: int) -> list[tuple[int, int]]:
    """(bucket start, messages sent) for the last ``seconds``, oldest first."""
    raw = cast(dict[bytes, bytes], engine.r.hgetall(engine.keys.job_rate(job_id)))
    now_bucket = int(time.time()) // RATE_BUCKET_S
    first = now_bucket - seconds // RATE_BUCKET_S + 1
    counts = {int(k): int(v) for k, v in raw.items()}
    return [(b * RATE_BUCKET_S, counts.get(b, 0)) for b in range(first, now_bucket + 1)]


def job_status(engine: Engine, job: Job, slugs: dict[str, str]) -> dict[str, Any]:
    e = engine
    control = JobControl(e)
    backfills = Backfills(e)
    raw_stats = cast(dict[bytes, bytes], e.r.hgetall(e.keys.job_stats(job.id)))
    stats = {k.decode(): int(v) for k, v in raw_stats.items()}
    pipe = e.r.pipeline(transaction=False)
    for shard in range(e.cfg.shards):
        outbox = Outbox(e.keys, shard, job.id)
        outbox.length(pipe)
        outbox.head(pipe)
    pipe.xlen(e.keys.job_dead(job.id))
    pipe.get(e.keys.job_error(job.id))
    answers = pipe.execute()
    error_raw, dead_now = answers.pop(), answers.pop()
    backlog = sum(answers[0::2])
    heads = [t for raw in answers[1::2] if (t := head_time_ms(raw)) is not None]
    now = time.time_ns()
    oldest_age_s = (now // NS_PER_MS - min(heads)) / 1000 if heads else 0.0
    health = control.health.get(job.id)
    done, total = backfills.progress(job.id)
    state = control.shown_state(job, backfills.active(job.id), now)
    last_minute = sum(n for _, n in throughput(e, job.id, 60))
    return {
        "id": job.id,
        "label": job.label,
        "description": job.description,
        "state": state,
        "state_meaning": STATES[state],
        "reason": job.reason,
        "next_attempt": format_rfc3339(health.retry_at) if state == "sleeping" else None,
        "audiences": [{"id": a, "slug": slugs.get(a, "?")} for a in job.audiences],
        "fields": list(job.fields),
        "events": list(job.events),
        "transport": job.transport,
        "changes_only": job.changes_only,
        "partitions": partition_layout(e, job),
        "created": format_rfc3339(job.created),
        "counts": {
            "sent": stats.get("sent", 0),
            "backfilled": stats.get("backfilled", 0),
            "failed": stats.get("send_errors", 0),
            "dead_lettered": stats.get("dead_lettered", 0),
            "dead_letters_waiting": dead_now,
        },
        "backlog": backlog,
        "oldest_unsent_age_s": round(oldest_age_s, 3),
        "backfill": {"scanned": done, "total": total, "active": backfills.active(job.id)},
        "throughput_per_s_last_minute": round(last_minute / 60, 2),
        "last_error": _error(error_raw),
    }


def partition_layout(engine: Engine, job: Job) -> dict[str, Any]:
    """How the job's hub is sent to: per partition (and how many), or one user per request."""
    try:
        auth = engine.auths.get(job.auth_id)
    except NotFound:
        return {"mode": "unknown", "note": f"authorization {job.auth_id} no longer exists"}
    return HubPartitions(engine.r, engine.keys).layout(auth).public()


def _error(raw: bytes | None) -> dict[str, Any] | None:
    if not raw:
        return None
    info: dict[str, Any] = orjson.loads(raw)
    info["at"] = format_rfc3339(int(info["at"]))
    return info
