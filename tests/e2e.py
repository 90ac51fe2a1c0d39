"""Helpers for end-to-end tests: set up audiences and jobs, read what the hub received."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from audiencehub.processes import HubEmulator, wait_for
from workers.audiences import AudienceStore
from workers.auths import AuthStore
from workers.engine import Engine
from workers.jobs import Job, JobStore

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "schemas" / "message.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def make_job(engine: Engine, hub: HubEmulator, slugs: list[str], **kw: Any) -> Job:
    store = AudienceStore(engine.r, engine.keys)
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    return JobStore(engine.r, engine.keys).create(
        "e2e", auth.id, [store.get(s).id for s in slugs], **kw
    )


def bodies(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Message bodies, each checked against the JSON Schema of the contract."""
    out = []
    for ev in events:
        body = orjson.loads(ev["body"])
        VALIDATOR.validate(body)
        out.append(body)
    return out


def changes_by_user(events: list[dict[str, Any]]) -> dict[str, list[list[tuple[str, str]]]]:
    """user -> ordered list of messages, each a sorted list of (event, slug)."""
    out: dict[str, list[list[tuple[str, str]]]] = defaultdict(list)
    for body in bodies(events):
        seg = sorted((s["event"], s["slug"]) for s in body["data"]["segment_events"])
        out[body["data"]["user_id"]].append(seg)
    return dict(out)


def wait_messages(hub: HubEmulator, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (evs := hub.events()) and len(evs) >= count and evs,
        timeout,
        interval=0.1,
        what=f"{count} messages at the hub (have {len(hub.events())})",
    )


def cli(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run the real ``audiencehub`` command; returns stdout (and stderr when ``check`` is off),
    raises with its output on failure when ``check`` is on."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "from audiencehub.cli import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not check:
        return done.stdout + done.stderr
    if done.returncode != 0:
        raise AssertionError(f"audiencehub {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout
