"""Plain helpers shared by tests in several folders (fixtures live in the conftest.py files).

What is here is not a fixture because module-scoped fixtures and property tests call it too, or
because it takes arguments a fixture cannot: an engine on other settings, a job on a given hub, the
real ``audiencehub`` command with a given environment, the message contract's JSON Schema.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import redis

from audiencehub.processes import HubEmulator
from workers.config import Settings
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.jobs.store import Job

SHARDS = 4
"""Shards of every test engine and process (the ``cfg`` and ``proc_env`` fixtures)."""
SHARDS_PER_DRAIN = 2
"""Two drain groups of two shards, so every test crosses groups (kicks, sweeps, drains)."""

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "schemas" / "message.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


class RecordingSender:
    """A TaskSender that remembers what would have been queued, for in-process engine tests."""

    def __init__(self) -> None:
        self.drains: list[int] = []
        self.delivers: list[str] = []
        self.backfills: list[tuple[str, int]] = []

    def drain(self, shard: int) -> None:
        self.drains.append(shard)

    def deliver(self, job: str) -> None:
        self.delivers.append(job)

    def backfill(self, job: str, shard: int) -> None:
        self.backfills.append((job, shard))


def with_settings(cfg: Settings, **changes: object) -> Settings:
    return dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]


def engine_for(cfg: Settings) -> Engine:
    """An in-process engine on ``cfg``'s Redis and prefix whose kicks are only recorded: for
    setting up and checking the state a process (API, worker) works on."""
    return Engine.create(RecordingSender(), cfg=cfg, r=redis.Redis.from_url(cfg.redis_url))


def make_job(engine: Engine, hub: HubEmulator, slugs: list[str], **kw: Any) -> Job:
    """A job as the CLI makes it (with its backfill when ``existing_users``)."""
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    return create_job(engine, "e2e", auth.id, slugs, **kw)


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``audiencehub`` command in its own process, as a user would."""
    return subprocess.run(
        [sys.executable, "-c", "from audiencehub.cli import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the real ``audiencehub`` command; returns stdout (and stderr when ``check`` is off),
    raises with its output on failure when ``check`` is on."""
    done = run_cli(env, *args, stdin=stdin)
    if not check:
        return done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"audiencehub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def bodies(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Message bodies, each checked against the JSON Schema of the contract."""
    out = []
    for ev in events:
        body = orjson.loads(ev["body"])
        VALIDATOR.validate(body)
        out.append(body)
    return out


def changed(body: dict[str, Any]) -> list[dict[str, str]]:
    """The segment events that changed in this message: an enter whose enter time (an exit whose
    exit time) is the message's timestamp. The others are the user's current audiences of the job,
    carried beside the change as in the seed (docs/delivery.md, "The message")."""
    at = body["meta"]["timestamp"]
    return [s for s in body["data"]["segment_events"] if s[s["event"]] == at]
