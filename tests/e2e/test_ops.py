"""Operating it: Flower sees the tasks and nothing private, metrics read the whole deployment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audiencehub.processes import (
    CeleryBeat,
    CeleryWorker,
    HubEmulator,
    Managed,
    free_port,
    wait_for,
)
from tests.e2e.helpers import settle, wait_messages
from tests.helpers import make_job
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.metrics import EngineCollector
from workers.pipeline.ingest import Ingestor, list_items

pytestmark = pytest.mark.e2e
EMAIL = "very.private.person@example.com"


@pytest.fixture
def flower(workdir: Path, proc_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = Managed(
        "flower",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tasks",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            "--basic-auth=ops:s3cret",
        ],
        workdir,
        proc_env,
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/healthcheck", timeout=2).ok
        except requests.ConnectionError:
            return False

    wait_for(up, 30, interval=0.2, what="flower")
    yield url
    proc.stop()


def test_flower_shows_the_tasks_by_name_with_ids_and_counts_only(
    live_engine: Engine,
    flower: str,
    hub: HubEmulator,
    beat: CeleryBeat,
    workdir: Path,
    proc_env: dict[str, str],
) -> None:
    """Event contents reach neither Flower nor the JSON logs, whoever sends ingest_events: our
    app (its publish hook sets argsrepr), a bare Celery client that sets nothing, or a call that
    fails (Celery logs a failed task's arguments)."""
    worker = CeleryWorker(workdir, {**proc_env, "AUDIENCEHUB_LOG_FORMAT": "json"}, name="json")
    worker.start()
    try:
        check_flower(live_engine, flower, hub, worker)
    finally:
        worker.stop()


def check_flower(live_engine: Engine, flower: str, hub: HubEmulator, worker: CeleryWorker) -> None:
    assert requests.get(f"{flower}/api/tasks", timeout=5).status_code == 401

    def names() -> set[object]:
        got = requests.get(f"{flower}/api/tasks", auth=("ops", "s3cret"), timeout=5).json()
        return {t.get("name") for t in got.values()}

    # Workers send task events only once Flower asks them to (every few seconds): wait for
    # beat's ticks to show up before running the job.
    wait_for(lambda: "audiencehub.tick" in names(), 30, interval=0.5, what="events to flow")
    AudienceStore(live_engine.r, live_engine.keys).create("all", "FILTER EXISTS email")
    make_job(live_engine, hub, ["all"])
    Ingestor(live_engine).ingest(list_items([{"user_id": "p1", "email": EMAIL}]))
    from tasks.app import make_app

    make_app(live_engine.cfg.redis_url).send_task(
        "audiencehub.ingest_events", args=[[{"user_id": "p2", "email": EMAIL}]]
    )
    # A producer without our hooks (celery signals are process-wide, so another process).
    bare = (
        "import sys; from celery import Celery; c = Celery(broker=sys.argv[1]); "
        "c.send_task('audiencehub.ingest_events', args=[[{'user_id': 'p3', 'email': sys.argv[2]}]],"
        " queue='ingest'); "
        "c.send_task('audiencehub.ingest_events', args=[[{'email': sys.argv[2]}], 'one too many'],"
        " queue='ingest')"
    )
    subprocess.run(
        [sys.executable, "-c", bare, live_engine.cfg.redis_url, EMAIL], check=True, timeout=60
    )
    wait_messages(hub, 3)
    key = hub.connection_string.split("SharedAccessKey=")[1].split(";")[0]

    def tasks() -> dict[str, dict[str, object]] | None:
        got = requests.get(f"{flower}/api/tasks", auth=("ops", "s3cret"), timeout=5).json()
        names = {t.get("name") for t in got.values()}
        wanted = {"audiencehub.drain_shard", "audiencehub.deliver", "audiencehub.ingest_events"}
        failed = any(t.get("state") == "FAILURE" for t in got.values())
        return got if wanted <= names and failed else None

    seen = wait_for(tasks, 30, interval=0.5, what="the tasks in Flower")
    text = str(seen)
    assert "<1 events>" in text
    assert EMAIL not in text, "profile content must not reach Flower"
    assert key not in text, "the key must not reach Flower"
    wait_for(lambda: "raised unexpected" in worker.log(), 10, what="the failure in the log")
    assert '"data": {' in worker.log() or '"data":{' in worker.log(), "celery's extra is logged"
    assert EMAIL not in worker.log(), "profile content must not reach the JSON log"


def test_metrics_count_the_deployment_and_show_live_state(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    AudienceStore(e.r, e.keys).create("all", "FILTER EXISTS email")
    job = make_job(e, hub, ["all"])
    Ingestor(e).ingest(list_items([{"user_id": f"m{i}", "email": "a@b.c"} for i in range(5)]))
    Ingestor(e).ingest(list_items([{"nobody": 1}]))
    wait_messages(hub, 5)
    settle(e)  # every message acknowledged, so counted
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in EngineCollector(e).collect()
        for s in m.samples
    }
    audience = AudienceStore(e.r, e.keys).get("all").id
    assert metrics[("audiencehub_events_accepted_total", ())] == 5
    assert metrics[("audiencehub_events_rejected_total", (("field", "user_id"),))] == 1
    enter = (("audience", audience), ("direction", "enter"))
    assert metrics[("audiencehub_transitions_total", enter)] == 5
    assert metrics[("audiencehub_messages_sent_total", (("job", job.id),))] == 5
    assert metrics[("audiencehub_outbox_backlog_messages", (("job", job.id),))] == 0
    assert metrics[("audiencehub_evaluations_total", ())] >= 5
