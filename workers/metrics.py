"""Engine metrics: counters kept in Redis, read out as Prometheus metrics by any process.

Why Redis and not each process's memory: a prefork worker is many processes that cannot each
serve a port, workers come and go as they scale, and what operators ask ("how many exits did
audience X produce today?") is a question about the whole deployment. So every engine step
adds to counters in one hash (in the pipeline it already sends), and ``EngineCollector`` turns
that hash plus live state (backlogs, oldest unsent age, due index, shard lag) into metrics for
the API's ``/metrics`` and ``audiencehub metrics``. Per-process task timings come from Flower.

Counter fields are ``name|label|label`` in ``p:metrics``; names and labels are listed in
``COUNTERS``. Labels are ids (audience, job) and reasons, never user data.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from workers.delivery.outbox import Outbox, head_time_ms
from workers.engine import Engine
from workers.schedule.due_index import DueIndex
from workers.timefmt import NS_PER_MS

EVENTS_ACCEPTED = "events_accepted"
EVENTS_DUPLICATE = "events_duplicate"
"""The intake's two counters: Python names them, and passes the names to intake.lua, which
counts them in the same call that stores the events."""

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    EVENTS_ACCEPTED: ("Events accepted (durable in a shard stream).", ()),
    "events_rejected": (
        "Events refused at ingest, by the field at fault (named fields only; see LABELLED_FIELDS).",
        ("field",),
    ),
    EVENTS_DUPLICATE: ("Events acknowledged as repeats of an event id, not stored again.", ()),
    "profiles_updated": ("Profiles written back by drains.", ()),
    "entries_drained": (
        "Shard entries applied by drains (a page of re-checks counts per user).",
        (),
    ),
    "drain_batches": (
        "Drain batches committed: entries_drained / drain_batches is the batch size, which says "
        "whether a drain's fixed round trips are spread over many entries.",
        (),
    ),
    "evaluations": ("Audience evaluations (one profile against one audience).", ()),
    "transitions": ("Users entering or leaving audiences.", ("audience", "direction")),
    "messages_sent": ("Messages the hub accepted, by job.", ("job",)),
    "messages_failed": (
        "Failed send attempts (messages in them), by job and reason.",
        ("job", "reason"),
    ),
    "dead_letters": ("Messages moved to dead letters, by job.", ("job",)),
    "entries_set_aside": (
        "Shard entries set aside instead of applied (limit, failed, timed_out).",
        ("reason",),
    ),
    "backfilled": ("Existing members written by backfills, by job.", ("job",)),
}
LATENESS_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000)
LABELLED_FIELDS = frozenset({"user_id", "event", "_ts", "_id", "messageId"})
"""Rejected fields the metrics name; any other (a client's own field name, unbounded and maybe
personal) counts as ``(other field)``, so a client cannot create series at will."""


def metric_field(field: str | None) -> str:
    """The ``field`` label for a rejected event: bounded to the fields ingest itself checks."""
    if field is None:
        return "(event)"
    return field if field in LABELLED_FIELDS else "(other field)"


class Tallies:
    """Increments gathered during one step, flushed with one HINCRBY each into a pipeline."""

    def __init__(self) -> None:
        self.counts: Tally[str] = Tally()

    def add(self, name: str, n: int = 1, *labels: str) -> None:
        if n:
            self.counts["|".join((name, *labels))] += n

    def merge(self, other: Tallies) -> None:
        """Add ``other``'s increments (a part of a step that turned out to count)."""
        self.counts.update(other.counts)

    def lateness(self, ms: int) -> None:
        for bound in LATENESS_BUCKETS_MS:
            if ms <= bound:
                self.counts[f"lateness_le|{bound}"] += 1
        self.counts["lateness_count"] += 1
        self.counts["lateness_sum_ms"] += ms

    def flush(self, engine: Engine, pipe: Any) -> None:
        for field, n in self.counts.items():
            pipe.hincrby(engine.keys.metrics, field, n)
        self.counts.clear()


class EngineCollector(Collector):
    """Prometheus collector reading the engine's counters and live state from Redis."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def collect(self) -> Iterator[Any]:
        e = self.e
        raw = cast(dict[bytes, bytes], e.r.hgetall(e.keys.metrics))
        fields = {k.decode(): int(v) for k, v in raw.items()}
        yield from self._counters(fields)
        yield self._lateness(fields)
        yield from self._state()

    def _counters(self, fields: dict[str, int]) -> Iterator[Any]:
        for name, (doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(f"audiencehub_{name}", doc, labels=list(labels))
            for field, value in fields.items():
                parts = field.split("|")
                if parts[0] == name and len(parts) == len(labels) + 1:
                    family.add_metric(parts[1:], value)
            yield family

    def _lateness(self, fields: dict[str, int]) -> HistogramMetricFamily:
        buckets = [(str(b / 1000), fields.get(f"lateness_le|{b}", 0)) for b in LATENESS_BUCKETS_MS]
        buckets.append(("+Inf", fields.get("lateness_count", 0)))
        return HistogramMetricFamily(
            "audiencehub_due_lateness_seconds",
            "From the instant an answer flipped with time to its re-evaluation being committed.",
            buckets=buckets,
            sum_value=fields.get("lateness_sum_ms", 0) / 1000,
        )

    def _state(self) -> Iterator[Any]:
        e = self.e
        shards = range(e.cfg.shards)
        jobs = list(e.registry.get().jobs)
        pipe = e.r.pipeline(transaction=False)
        for shard in shards:
            pipe.xlen(e.keys.events(shard))
            DueIndex(e.keys, shard).count(pipe)
        for shard in shards:
            pipe.xlen(e.keys.shard_dead(shard))
        for job in jobs:
            for shard in shards:
                outbox = Outbox(e.keys, shard, job)
                outbox.length(pipe)
                outbox.head(pipe)
        answers = pipe.execute()
        lag = GaugeMetricFamily(
            "audiencehub_shard_lag_entries", "Accepted entries not yet applied.", labels=["shard"]
        )
        due = 0
        for shard in shards:
            lag.add_metric([str(shard)], answers[2 * shard])
            due += int(answers[2 * shard + 1] or 0)
        yield lag
        yield GaugeMetricFamily(
            "audiencehub_due_index_users", "Users scheduled for a time-driven re-check.", value=due
        )
        aside = GaugeMetricFamily(
            "audiencehub_shard_set_aside_entries",
            "Entries set aside in shard dead letters (audiencehub schedule stats lists them).",
            labels=["shard"],
        )
        for shard in shards:
            aside.add_metric([str(shard)], answers[2 * e.cfg.shards + shard])
        yield aside
        backlog = GaugeMetricFamily(
            "audiencehub_outbox_backlog_messages", "Messages waiting to be sent.", labels=["job"]
        )
        oldest = GaugeMetricFamily(
            "audiencehub_outbox_oldest_age_seconds",
            "Age of the oldest unsent message.",
            labels=["job"],
        )
        now_ms = time.time_ns() // NS_PER_MS
        base = 3 * e.cfg.shards
        for j, job in enumerate(jobs):
            total, heads = 0, []
            for shard in shards:
                i = base + 2 * (j * e.cfg.shards + shard)
                total += answers[i]
                if (head := head_time_ms(answers[i + 1])) is not None:
                    heads.append(head)
            backlog.add_metric([job], total)
            oldest.add_metric([job], (now_ms - min(heads)) / 1000 if heads else 0.0)
        yield backlog
        yield oldest


def serve(engine: Engine, port: int, host: str = "127.0.0.1") -> None:
    """Serve the engine's metrics on ``host:port`` from a background thread.

    Loopback unless ``AUDIENCEHUB_METRICS_HOST`` says otherwise: the endpoint has no auth, and
    its labels name jobs and audiences, so it is opened to a network only on purpose.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    start_http_server(port, addr=host, registry=registry)
