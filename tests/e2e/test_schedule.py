"""The seed's scheduled trigger, end to end: real worker and beat, time moved with the CLI."""

from __future__ import annotations

import orjson
import pytest

from audiencehub.processes import CeleryBeat, CeleryWorker, HubEmulator, wait_for
from tests.e2e.helpers import settle, tasks_logged, wait_messages
from tests.helpers import bodies, changed, cli, make_job
from workers.audiences.store import AudienceStore
from workers.engine import Engine
from workers.keys import shard_of
from workers.pipeline.profile import Profile
from workers.schedule.clock import movable_clock
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

    # The moved clock keeps running, so the "minus 1 s" check has a little under a second: read
    # and move it in this process (what `clock now` and `clock advance` call), not across two CLI
    # starts, which take longer than that on a loaded machine.
    clock = movable_clock(live_engine.cfg, live_engine.r)
    clock.advance(flip - clock.now_ns() - int(1.3 * NS_PER_S))  # day 10 minus ~1 s
    ticks = tasks_logged((worker,), "tick", "received")  # the next one reads the moved clock
    wait_for(lambda: tasks_logged((worker,), "tick") > ticks, 10, what="a tick after the move")
    assert len(hub.events()) == 1, "nothing may happen before the window runs out"

    cli(proc_env, "clock", "advance", "2s")  # day 10 plus 1 s
    events = wait_messages(hub, 2, timeout=20)
    settle(live_engine)
    assert len(hub.events()) == 2, "exactly one exit"
    exit_msg = bodies(events)[1]
    segment = exit_msg["data"]["segment_events"][0]
    assert segment["event"] == "exit"
    assert segment["exit"][:19] == format_rfc3339(flip)[:19]
    assert exit_msg["meta"]["timestamp"] == segment["exit"]

    stats = orjson.loads(cli(proc_env, "schedule", "stats", "--json"))
    assert stats["scheduled_users"] == 0
    assert stats["lateness_ms"]["samples"] >= 1


def test_date_math_not_and_between_flip_on_time_through_real_processes(
    live_engine: Engine,
    hub: HubEmulator,
    worker: CeleryWorker,
    beat: CeleryBeat,
    proc_env: dict[str, str],
) -> None:
    store = AudienceStore(live_engine.r, live_engine.keys)
    store.create("recent_login", 'FILTER last_login > "now-30d"')
    store.create("lapsed", 'FILTER NOT last_login > "now-30d"')
    store.create("trial", 'FILTER signup BETWEEN "now-14d" AND "now-7d"')
    make_job(live_engine, hub, ["recent_login", "lapsed", "trial"])
    now = parse_rfc3339(cli(proc_env, "clock", "now").strip()) // NS_PER_S * NS_PER_S
    login = now - 29 * NS_PER_DAY  # 30 days old in one day
    signup = now - 6 * NS_PER_DAY  # inside the trial window in one day, out of it in eight
    event = {"user_id": "bo", "last_login": format_rfc3339(login), "signup": format_rfc3339(signup)}
    cli(proc_env, "ingest", "-", stdin=orjson.dumps(event).decode())
    first = wait_messages(hub, 1)
    assert [(s["event"], s["slug"]) for s in bodies(first)[0]["data"]["segment_events"]] == [
        ("enter", "recent_login")
    ]
    cli(proc_env, "clock", "advance", "1d")
    events = wait_messages(hub, 3, timeout=20)
    moved = sorted(
        (s["event"], s["slug"], s["exit"] if s["event"] == "exit" else s["enter"])
        for b in bodies(events)[1:]
        for s in changed(b)
    )
    flip_login = format_rfc3339(login + 30 * NS_PER_DAY)
    flip_trial = format_rfc3339(signup + 7 * NS_PER_DAY + NS_PER_S)  # BETWEEN is exclusive
    assert moved == sorted(
        [
            ("exit", "recent_login", flip_login),
            ("enter", "lapsed", flip_login),
            ("enter", "trial", flip_trial),
        ]
    )
    # Each time-driven step carries the memberships of its own instant: when trial is entered,
    # lapsed (entered at the earlier step) travels beside it, as in the seed.
    trial = next(b for b in bodies(events)[1:] if changed(b)[0]["slug"] == "trial")
    assert [
        (s["event"], s["slug"], s["enter"], s["exit"][:4]) for s in trial["data"]["segment_events"]
    ] == [("enter", "trial", flip_trial, "2099"), ("enter", "lapsed", flip_login, "2099")]
    cli(proc_env, "clock", "advance", "7d")
    events = wait_messages(hub, 4, timeout=20)
    last = bodies(events)[-1]["data"]["segment_events"]
    assert [(s["event"], s["slug"]) for s in last] == [("exit", "trial"), ("enter", "lapsed")]
    assert last[0]["exit"] == format_rfc3339(signup + 14 * NS_PER_DAY)
