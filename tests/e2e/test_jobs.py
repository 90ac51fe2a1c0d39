"""Export jobs end to end: Existing Users backfill under live traffic, pause/resume, failure and
recovery, and no secret anywhere a secret must not be."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator, redis_binary, wait_for
from tests.e2e.helpers import settle
from tests.helpers import cli
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.backfill import Backfills
from workers.jobs.control import JobControl
from workers.jobs.setup import create_job
from workers.jobs.store import JobStore
from workers.pipeline.ingest import Ingestor, list_items
from workers.schedule.reevaluate import Reevaluations
from workers.timefmt import format_rfc3339

pytestmark = pytest.mark.e2e
USERS = 20_000


def last_segments(hub: HubEmulator) -> tuple[dict[str, dict[str, str]], int]:
    """user -> slug -> last event seen for that slug; and the message count."""
    final: dict[str, dict[str, str]] = {}
    events = hub.events()
    for ev in events:
        body = orjson.loads(ev["body"])
        for seg in body["data"]["segment_events"]:
            final.setdefault(body["data"]["user_id"], {})[seg["slug"]] = seg["event"]
    return final, len(events)


def test_backfill_of_20000_users_under_live_changes_ends_in_the_true_state(
    live_engine: Engine, hub: HubEmulator, worker2: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    store = AudienceStore(e.r, e.keys)
    store.create("tier_a", 'FILTER tier == "a"')
    store.create("big", "FILTER value >= 50")
    rng = random.Random(11)
    truth: dict[str, dict[str, Any]] = {
        f"u{i:05d}": {"tier": rng.choice("abc"), "value": rng.randrange(100)} for i in range(USERS)
    }
    rows = [{"user_id": u, **f} for u, f in truth.items()]
    for start in range(0, len(rows), 5000):  # one write takes at most 10,000 (all-or-nothing)
        Ingestor(e).ingest(list_items(rows[start : start + 5000]))
    wait_for(
        lambda: not any(e.r.xlen(e.keys.events(s)) for s in range(e.cfg.shards)),
        120,
        interval=0.2,
        what="the users to be applied",
    )

    auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
    job = create_job(e, "backfill", auth.id, ["tier_a", "big"], existing_users=True)
    started = time.monotonic()
    changed: set[str] = set()
    while Backfills(e).active(job.id) and time.monotonic() - started < 120:
        batch = []
        for _ in range(200):
            uid = f"u{rng.randrange(USERS):05d}"
            truth[uid] = {"tier": rng.choice("abc"), "value": rng.randrange(100)}
            batch.append({"user_id": uid, **truth[uid]})
            changed.add(uid)
        Ingestor(e).ingest(list_items(batch))
        time.sleep(0.2)
    settle(e, timeout=120)  # the backfill ran and every message was delivered

    final, count = last_segments(hub)
    members = {
        u: {s for s, inside in (("tier_a", f["tier"] == "a"), ("big", f["value"] >= 50)) if inside}
        for u, f in truth.items()
    }
    for user, slugs in members.items():
        for slug in ("tier_a", "big"):
            last = final.get(user, {}).get(slug)
            if slug in slugs:
                assert last == "enter", f"{user} is in {slug} but the hub's last word is {last}"
            else:
                assert last in (None, "exit"), f"{user} is not in {slug} but the hub says {last}"
    assert len(changed) > 100, "live changes must overlap the backfill"
    status = orjson.loads(cli(dict(worker2.env), "job", "show", job.id))
    assert status["state"] == "running" and status["backlog"] == 0
    assert status["counts"]["backfilled"] >= sum(1 for s in members.values() if s) * 0.5
    print(f"\nbackfill e2e: {count} messages, {len(changed)} users changed during the backfill")


def test_users_entering_live_while_an_existing_users_job_is_created_get_one_enter(
    live_engine: Engine,
    hub: HubEmulator,
    worker2: CeleryWorker,
    beat: CeleryBeat,
    proc_env: dict[str, str],
) -> None:
    """Issue 12: ``job create --existing-users`` while users enter live through real workers. Each
    member's first enter comes once: from the backfill if it was recorded before the backfill
    started, else live. Users only ever enter here, so every enter the hub sees is a first one.
    "aged" adds time-driven enters (released by beat) around the moment the job is created."""
    e = live_engine
    store = AudienceStore(e.r, e.keys)
    store.create("members", "FILTER stage >= 1")
    store.create("aged", 'FILTER signup < "now-2s"')
    old = format_rfc3339(e.clock.now_ns() - 3600 * 10**9)
    Ingestor(e).ingest(
        list_items([{"user_id": f"b{i:03d}", "stage": 1, "signup": old} for i in range(150)])
    )
    wait_for(
        lambda: not any(e.r.xlen(e.keys.events(s)) for s in range(e.cfg.shards)),
        60,
        interval=0.1,
        what="the first users to be applied",
    )
    AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)

    stop = threading.Event()
    entered: list[str] = []

    def enter_live() -> None:
        i = 0
        while not stop.is_set() or i < 150:
            now = format_rfc3339(e.clock.now_ns())
            batch = [{"user_id": f"n{i + k:03d}", "stage": 1, "signup": now} for k in range(5)]
            Ingestor(e).ingest(list_items(batch))
            entered.extend(str(b["user_id"]) for b in batch)
            i += 5
            time.sleep(0.02)

    feeder = threading.Thread(target=enter_live)
    feeder.start()
    try:
        # Users are entering live when the job is created, and go on while it backfills.
        wait_for(lambda: len(entered) >= 50, 30, what="live users before the job")
        # --changes-only: each message names only what it enters (the default shape also
        # carries the user's other current audiences beside it, which would count twice here).
        job_id = cli(
            proc_env,
            "job",
            "create",
            "--label",
            "live",
            "--audience",
            "members",
            "--audience",
            "aged",
            "--auth",
            "hub",
            "--existing-users",
            "--changes-only",
        ).strip()
        at_create = len(entered)
        wait_for(lambda: len(entered) >= at_create + 100, 30, what="live users after the job")
    finally:
        stop.set()
        feeder.join()
    JobStore(e.r, e.keys).get(job_id)
    cli(proc_env, "clock", "advance", "5s")  # every live signup is now "aged": all due
    cli(proc_env, "wait", "--idle", "--timeout", "120")

    enters: dict[tuple[str, str], int] = {}
    for ev in hub.events():
        body = orjson.loads(ev["body"])
        for seg in body["data"]["segment_events"]:
            assert seg["event"] == "enter", "users only enter in this test"
            key = (body["data"]["user_id"], seg["slug"])
            enters[key] = enters.get(key, 0) + 1
    twice = {k: n for k, n in enters.items() if n > 1}
    assert not twice, f"{len(twice)} memberships got their enter more than once: {twice}"
    users = [f"b{i:03d}" for i in range(150)] + entered
    missing = [(u, s) for u in users for s in ("members", "aged") if (u, s) not in enters]
    assert not missing, f"{len(missing)} memberships never got an enter: {missing[:10]}"


def test_pause_keeps_collecting_and_resume_sends_everything(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    AudienceStore(e.r, e.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
    job = create_job(e, "p", auth.id, ["all"])
    JobControl(e).pause(job.id)
    Ingestor(e).ingest(list_items([{"user_id": f"p{i}", "email": "x@y.z"} for i in range(50)]))
    settle(e, worker, sweeps=2)  # drains ran, then sweeps: nothing may be sent while paused
    assert hub.events() == []
    JobControl(e).resume(job.id)
    wait_for(lambda: len(hub.events()) == 50, 30, what="all 50 after resume")


def test_a_rejected_authorization_fails_the_job_and_resume_after_fixing_sends_all(
    live_engine: Engine, hub: HubEmulator, worker: CeleryWorker, beat: CeleryBeat
) -> None:
    e = live_engine
    AudienceStore(e.r, e.keys).create("all", "FILTER EXISTS email")
    auth = AuthStore(e.r, e.keys, e.cfg).create("hub", hub.connection_string)
    job = create_job(e, "f", auth.id, ["all"])
    requests.put(f"{hub.base_url}/_emulator/faults", json={"status": 401}, timeout=5)
    Ingestor(e).ingest(list_items([{"user_id": f"f{i}", "email": "x@y.z"} for i in range(30)]))
    wait_for(lambda: JobControl(e).store.get(job.id).state == "failed", 30, what="the job to fail")
    assert "authorization rejected" in JobControl(e).store.get(job.id).reason
    requests.delete(f"{hub.base_url}/_emulator/faults", timeout=5)
    JobControl(e).resume(job.id)
    wait_for(lambda: len(hub.events()) == 30, 30, what="all 30 after resume")


def test_no_secret_in_broker_messages_logs_cli_output_or_errors(
    live_engine: Engine,
    hub: HubEmulator,
    worker: CeleryWorker,
    beat: CeleryBeat,
    proc_env: dict[str, str],
    workdir: Path,
) -> None:
    key = hub.connection_string.split("SharedAccessKey=")[1].split(";")[0]
    monitor = subprocess.Popen(
        [redis_binary("redis-cli"), "-u", proc_env["REDIS_URL"], "monitor"],
        stdout=open(workdir / "monitor.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: b"OK" in (workdir / "monitor.log").read_bytes(), 10, what="MONITOR to start")
    outputs = [
        cli(proc_env, "audience", "create", "--slug", "all", "--filter", "FILTER EXISTS email"),
        cli(
            proc_env,
            "auth",
            "create",
            "--label",
            "hub",
            "--connection-string",
            "-",
            stdin=hub.connection_string,
        ),
    ]
    outputs.append(
        cli(
            proc_env,
            "job",
            "create",
            "--label",
            "s",
            "--audience",
            "all",
            "--auth",
            "hub",
            "--existing-users",
        )
    )
    job_id = outputs[-1].strip()
    outputs.append(cli(proc_env, "auth", "show", "hub"))
    outputs.append(cli(proc_env, "auth", "list"))
    outputs.append(cli(proc_env, "auth", "test", "hub"))
    assert outputs[-1].startswith("healthy: the hub accepted the key for event hub 'audiences'")
    shown = orjson.loads(cli(proc_env, "auth", "show", "hub"))
    assert (shown["delivery"]["mode"], shown["delivery"]["count"]) == (
        "one request per partition",
        4,
    )
    changes = cli(
        proc_env,
        "job",
        "create",
        "--label",
        "c",
        "--audience",
        "all",
        "--auth",
        "hub",
        "--changes-only",
    ).strip()
    assert orjson.loads(cli(proc_env, "job", "show", changes))["changes_only"] is True
    events = "\n".join(
        orjson.dumps({"user_id": f"s{i}", "email": "a@b.c"}).decode() for i in range(20)
    )
    outputs.append(cli(proc_env, "ingest", "-", stdin=events))
    wait_for(lambda: len(hub.events()) >= 20, 30, what="the messages")
    requests.put(f"{hub.base_url}/_emulator/faults", json={"status": 401}, timeout=5)
    cli(proc_env, "ingest", "-", stdin=orjson.dumps({"user_id": "late", "email": "q@r.s"}).decode())
    wait_for(
        lambda: JobControl(live_engine).store.get(job_id).state == "failed",
        30,
        what="the job to fail",
    )
    outputs.append(cli(proc_env, "job", "show", job_id))
    bad = hub.connection_string.replace(key, "AAAA" + key[4:])
    for broken in (bad + ";Junk", bad.replace("Endpoint=", "Endpont="), bad.split(";")[2]):
        said = cli(
            proc_env,
            "auth",
            "create",
            "--label",
            "x",
            "--connection-string",
            "-",
            stdin=broken,
            check=False,
        )
        assert "Error:" in said
        outputs.append(said)
    run = Reevaluations(live_engine).start([])  # its messages go through the broker too
    wait_for(
        lambda: (done := Reevaluations(live_engine).get(run.id)) and done.finished_at,
        30,
        what="the re-check run to finish",
    )
    monitor.terminate()
    monitor.wait(5)
    worker.stop()
    beat.stop()
    texts = {
        "redis commands (celery messages included)": (workdir / "monitor.log").read_text(
            errors="replace"
        ),
        "worker log": worker.log(),
        "beat log": beat.log(),
        "cli output and errors": "\n".join(outputs),
    }
    assert "audiencehub.drain_shard" in texts["redis commands (celery messages included)"]
    for where, text in texts.items():
        assert key not in text, f"the SharedAccessKey leaked into the {where}"
        assert key[4:] not in text, f"part of the key leaked into the {where}"
