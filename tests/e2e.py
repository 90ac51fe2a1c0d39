"""Helpers for end-to-end tests: set up audiences and jobs, read what the hub received."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from audiencehub.processes import HubEmulator, wait_for
from workers.engine import Engine
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.jobs.store import Job

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "schemas" / "message.schema.json").read_text()
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def make_job(engine: Engine, hub: HubEmulator, slugs: list[str], **kw: Any) -> Job:
    """A job as the CLI makes it (with its backfill when ``existing_users``)."""
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("hub", hub.connection_string)
    return create_job(engine, "e2e", auth.id, slugs, **kw)


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


def _tier_a(f: dict[str, Any]) -> bool:
    return bool(f.get("tier") == "a")


def _big(f: dict[str, Any]) -> bool:
    return bool(f.get("value", 0) >= 50)


AUDIENCES = {"tier_a": _tier_a, "big": _big}


def workload(users: int, rounds: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for _ in range(rounds):
        order = list(range(users))
        rng.shuffle(order)
        for i in order:
            event: dict[str, Any] = {"user_id": f"u{i:04d}"}
            if rng.random() < 0.7:
                event["tier"] = rng.choice("ab")
            if rng.random() < 0.7:
                event["value"] = rng.randrange(100)
            events.append(event)
    return events


def model(
    events: list[dict[str, Any]], changes_only: bool = False
) -> dict[str, list[list[tuple[str, str]]]]:
    """user -> the messages the rules call for, each a sorted list of (event, slug): what moved,
    plus (unless ``changes_only``) the audiences the user stays in, as ("enter", slug)."""
    fields: dict[str, dict[str, Any]] = {}
    inside: dict[str, set[str]] = {}
    out: dict[str, list[list[tuple[str, str]]]] = {}
    for event in events:
        uid = event["user_id"]
        fields.setdefault(uid, {}).update(event)
        now = {slug for slug, rule in AUDIENCES.items() if rule(fields[uid])}
        before = inside.get(uid, set())
        moved = [("enter", s) for s in now - before] + [("exit", s) for s in before - now]
        if moved:
            stayed = [] if changes_only else [("enter", s) for s in now & before]
            out.setdefault(uid, []).append(sorted(moved + stayed))
        inside[uid] = now
    return out
