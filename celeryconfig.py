"""Every Celery setting of audiencehub, in one place.

Tasks carry ids and small batches only (never a secret, never a whole profile), as JSON. Results
are ignored: state lives in Redis structures, not in a result backend. Acks are late and a task
whose worker died is re-queued, and every engine step is idempotent, so redelivery is harmless.
"""

from __future__ import annotations

from kombu.entity import Queue

from workers.config import settings

_cfg = settings()

VISIBILITY_TIMEOUT_S = 900
"""Seconds before Redis hands an unacked message to another worker. It must exceed the longest
task (``task_time_limit``), and no task is ever scheduled further ahead than this: deferred work
lives in the due index, never in a Celery ETA."""

broker_url = _cfg.broker_url
broker_connection_retry_on_startup = True
# Redis at its maxmemory answers the consumer's bookkeeping writes with OOM, which kombu reports as
# a channel error, not a connection error: by default the consumer then stops for good and the
# worker exits (or never starts against a full Redis). With this setting (Celery 5.3+, see
# docs.celeryq.dev userguide/configuration.html#broker-channel-error-retry; the consumer's start
# loop then treats channel errors like connection errors) it reconnects and carries on once there
# is room. tests/chaos/test_full_redis.py.
broker_channel_error_retry = True
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
result_backend_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Time limits. Every task works for a short budget (a drain 0.3 s, a delivery 0.5 s) and re-queues
# itself, so a minute is far beyond any healthy run; what exceeds it is stuck (a poison entry, a
# hung connection). These values are what limits our tasks: Celery copies task_time_limit onto
# each task class and passes it with every job, which overrides a worker's --time-limit /
# --soft-time-limit flags (those only set the pool's default for tasks without a limit). That is
# why a worker started with --time-limit=10 let a drain run 75 s: ours was 300 s, soft 240 s.
# The soft limit raises SoftTimeLimitExceeded inside the task (the drain records why it stopped);
# the hard limit kills the pool process, which only the prefork pool can do, so it is the pool.
# A drain that keeps failing or timing out on the same entry sets the entry aside after
# AUDIENCEHUB_MAX_ATTEMPTS tries (workers/pipeline/set_aside.py), so the shard moves on.
worker_pool = "prefork"
task_time_limit = _cfg.task_time_limit_s
task_soft_time_limit = max(1, _cfg.task_time_limit_s * 3 // 4)
# Task events cost three Redis publishes per task; Flower switches them on for the workers it
# watches (enable_events), so nothing is spent on them while nobody looks.
worker_send_task_events = False
task_send_sent_event = False

QUEUES = {
    "ingest": "drains shards and takes events sent as tasks",
    "deliver": "sends outboxes to Event Hubs",
    "backfill": "writes existing members into job outboxes",
    "schedule": "beat's ticks: releases due users, sweeps for stranded work",
}
task_queues = tuple(Queue(name) for name in QUEUES)
task_default_queue = "ingest"
task_routes = {
    "audiencehub.drain_shard": {"queue": "ingest"},
    "audiencehub.ingest_events": {"queue": "ingest"},
    "audiencehub.deliver": {"queue": "deliver"},
    "audiencehub.backfill": {"queue": "backfill"},
    "audiencehub.tick": {"queue": "schedule"},
    "audiencehub.sweep": {"queue": "schedule"},
}

beat_schedule = {
    # Twice a second: a window that runs out waits at most half a second to be released, which
    # keeps the lateness p99 under a second (bench/schedule.py).
    "release-due-users": {
        "task": "audiencehub.tick",
        "schedule": 0.5,
        "options": {"expires": 5},
    },
    "sweep-stranded-work": {
        "task": "audiencehub.sweep",
        "schedule": 2.0,
        "options": {"expires": 15},
    },
}
