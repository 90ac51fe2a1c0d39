"""What the dashboard shows, gathered from the engine: the same functions the CLI and API call.

Pages render these dicts on first load and the browser polls the same dicts as JSON, so a number
on screen always comes from ``job_status`` (what ``audiencehub job show`` prints) or from the
engine's Prometheus collector (what ``/metrics`` serves), never from a second computation.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from workers.audiences.sizes import AudienceSizes
from workers.delivery.dead_letters import DeadLetters
from workers.engine import Engine
from workers.jobs.control import JobControl
from workers.jobs.status import job_status, throughput
from workers.jobs.store import Job
from workers.metrics import EngineCollector
from workers.timefmt import format_rfc3339

CHART_SECONDS = 3600
"""Throughput charts cover the last hour, one bar per minute."""
DEAD_LETTERS_SHOWN = 200
SIZE_RANGES = {"1h": 60, "6h": 360, "24h": 1440}


def slugs(e: Engine) -> dict[str, str]:
    return {a.id: a.slug for a in e.audiences.all()}


def per_minute(e: Engine, job_id: str, seconds: int = CHART_SECONDS) -> list[list[int]]:
    """[minute start (epoch s), messages sent] for the last ``seconds``, from the 10 s buckets."""
    minutes: dict[int, int] = {}
    for start, n in throughput(e, job_id, seconds):
        minute = start // 60 * 60
        minutes[minute] = minutes.get(minute, 0) + n
    now_minute = int(time.time()) // 60 * 60
    first = now_minute - (seconds // 60 - 1) * 60
    return [[m, minutes.get(m, 0)] for m in range(first, now_minute + 1, 60)]


def engine_counters(e: Engine) -> dict[str, Any]:
    """Deployment-wide counters and gauges, read through the collector behind ``/metrics``."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in EngineCollector(e).collect():
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))

    def total(name: str) -> int:
        return int(sum(v for _, v in samples.get(name, [])))

    transitions: dict[str, dict[str, int]] = defaultdict(lambda: {"enter": 0, "exit": 0})
    for labels, value in samples.get("audiencehub_transitions_total", []):
        transitions[labels["audience"]][labels["direction"]] = int(value)
    return {
        "events_accepted": total("audiencehub_events_accepted_total"),
        "events_rejected": total("audiencehub_events_rejected_total"),
        "evaluations": total("audiencehub_evaluations_total"),
        "shard_lag": total("audiencehub_shard_lag_entries"),
        "due_users": total("audiencehub_due_index_users"),
        "transitions": dict(transitions),
    }


def job_card(e: Engine, job: Job, names: dict[str, str]) -> dict[str, Any]:
    """One job's status (``job show``'s dict) plus its throughput per minute for the chart."""
    return {"status": job_status(e, job, names), "minutes": per_minute(e, job.id)}


def jobs_overview(e: Engine) -> dict[str, Any]:
    names = slugs(e)
    return {
        "jobs": [job_card(e, job, names) for job in e.jobs.all()],
        "system": engine_counters(e),
        "at": format_rfc3339(time.time_ns()),
    }


def job_detail(e: Engine, job_ref: str) -> dict[str, Any]:
    """The job page: its card, state history (newest first) and dead letters (never bodies)."""
    job = e.jobs.get(job_ref)
    card = job_card(e, job, slugs(e))
    card["history"] = [
        {"at": format_rfc3339(int(h["at"])), "state": h["state"], "reason": h["reason"]}
        for h in JobControl(e).history(job.id)
    ]
    card["dead_letters"] = [
        {"id": d.id, "user_id": d.user_id, "reason": d.reason, "at": d.at}
        for d in DeadLetters(e).entries(job.id, DEAD_LETTERS_SHOWN)
    ]
    card["at"] = format_rfc3339(time.time_ns())
    return card


def audiences_overview(e: Engine, minutes: int = 60) -> dict[str, Any]:
    """Every audience with its size now, its sampled sizes over ``minutes``, its filter text and
    its enter/exit counters. Reading records this minute's sizes (see workers/audience_sizes)."""
    audiences = e.audiences.all()
    sizes = AudienceSizes(e)
    now = sizes.current([a.id for a in audiences])
    sizes.record(now)
    series = sizes.series([a.id for a in audiences], minutes)
    transitions = engine_counters(e)["transitions"]
    used_by: dict[str, list[str]] = defaultdict(list)
    for job in e.jobs.all():
        for aid in job.audiences:
            used_by[aid].append(job.label)
    return {
        "audiences": [
            {
                "id": a.id,
                "slug": a.slug,
                "description": a.description,
                "filter": a.filter,
                "includes": list(a.includes),
                "size": now[a.id],
                "series": [[t, n] for t, n in series[a.id]],
                "entered": transitions.get(a.id, {}).get("enter", 0),
                "exited": transitions.get(a.id, {}).get("exit", 0),
                "jobs": sorted(used_by.get(a.id, [])),
                "updated": format_rfc3339(a.updated),
            }
            for a in audiences
        ],
        "minutes": minutes,
        "at": format_rfc3339(time.time_ns()),
    }
