"""Helpers for end-to-end tests: read what the hub received, wait until the workers are done,
and a random workload with the model of what it must send (also used by the chaos runs)."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Any

from audiencehub.processes import CeleryWorker, HubEmulator, wait_for
from tests.helpers import bodies
from workers.engine import Engine
from workers.schedule.idle import wait_idle


def tasks_logged(workers: tuple[CeleryWorker, ...], task: str, what: str = "succeeded") -> int:
    """How many ``audiencehub.<task>`` tasks the workers logged as ``what`` (``received`` or
    ``succeeded``; they log at INFO): beat's ticks and sweeps leave no other trace."""
    line = re.compile(rf"Task audiencehub\.{task}\[[^\]]+\] {what}")
    return sum(len(line.findall(w.log())) for w in workers)


def settle(engine: Engine, *workers: CeleryWorker, sweeps: int = 0, timeout: float = 60) -> None:
    """Wait until the engine is idle (workers/schedule/idle.py: every stream and running job's
    outbox empty, nobody due, no backfill running), instead of sleeping and hoping. With
    ``sweeps``, also until that many of beat's sweeps then ran in ``workers`` and it is idle
    still: a sweep re-kicks whatever a lost kick left behind, so nothing more is on its way."""
    report = wait_idle(engine, timeout)
    assert report.idle, f"not idle after {timeout}s: {'; '.join(report.busy())}"
    if not sweeps:
        return
    seen = tasks_logged(workers, "sweep")
    names = [w.name for w in workers]
    wait_for(
        lambda: tasks_logged(workers, "sweep") >= seen + sweeps,
        timeout,
        interval=0.1,
        what=f"{sweeps} sweeps in {names}",
    )
    report = wait_idle(engine, timeout)
    assert report.idle, f"not idle after the sweeps: {'; '.join(report.busy())}"


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
