"""The seed's scheduled trigger, end to end: real worker and beat, time moved with the CLI."""

from __future__ import annotations

import time

import orjson
import pytest

from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator
from tests.e2e import bodies, cli, make_job, wait_messages
from workers.audiences import AudienceStore
from workers.engine import Engine
from workers.keys import shard_of
from workers.profile import Profile
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339, parse_rfc3339

pytestmark = pytest.mark.e2e


def test_has_done_x_twice_in_7_days_exits_when_the_second_latest_x_leaves_the_window(
    live_engine: Engine,
    hub: HubEmulator,
    worker: CeleryWorker,
    beat: CeleryBeat,
    proc_env: dict[str, str],
) -> None:
    AudienceStore(live_engine.r, live_engine.keys).create(
        "buyers", "FILTER timewindow(purchase, 2, 7)"
    )
    make_job(live_engine, hub, ["buyers"])
    purchase = orjson.dumps({"user_id": "ann", "event": "purchase"}).decode()

    cli(proc_env, "ingest", "-", stdin=purchase)  # day 0
    cli(proc_env, "clock", "advance", "3d")
    cli(proc_env, "ingest", "-", stdin=purchase)  # day 3: two in the window -> enter
    entered = wait_messages(hub, 1)
    assert bodies(entered)[0]["data"]["segment_events"][0]["event"] == "enter"
    cli(proc_env, "clock", "advance", "2d")
    cli(proc_env, "ingest", "-", stdin=purchase)  # day 5: still in

    blob = live_engine.r.hget(live_engine.keys.users(shard_of("ann", 4)), "ann")
    day3 = Profile.loads("ann", blob).occurrences["purchase"][1]  # type: ignore[arg-type]
    flip = day3 + 7 * NS_PER_DAY  # the day-3 purchase leaves the 7-day window

    # The moved clock keeps running, so the "minus 1 s" check has a little under a second.
    now = parse_rfc3339(cli(proc_env, "clock", "now").strip())
    cli(proc_env, "clock", "advance", f"{(flip - now) / NS_PER_S - 1.3:.3f}s")  # day 10 minus ~1 s
    time.sleep(0.6)
    assert len(hub.events()) == 1, "nothing may happen before the window runs out"

    cli(proc_env, "clock", "advance", "2s")  # day 10 plus 1 s
    events = wait_messages(hub, 2, timeout=20)
    time.sleep(2)
    assert len(hub.events()) == 2, "exactly one exit"
    exit_msg = bodies(events)[1]
    segment = exit_msg["data"]["segment_events"][0]
    assert segment["event"] == "exit"
    assert segment["exit"][:19] == format_rfc3339(flip)[:19]
    assert exit_msg["meta"]["timestamp"] == segment["exit"]

    stats = orjson.loads(cli(proc_env, "schedule", "stats", "--json"))
    assert stats["scheduled_users"] == 0
    assert stats["lateness_ms"]["samples"] >= 1
