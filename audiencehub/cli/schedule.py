"""``audiencehub audience reevaluate`` and ``audiencehub schedule …``: re-checks in time."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from audiencehub.cli.support import echo_json, friendly
from audiencehub.context import engine
from workers.pipeline.set_aside import ShardDeadLetters
from workers.schedule.reevaluate import Reevaluations, Run
from workers.schedule.release import due_stats
from workers.timefmt import NS_PER_MS, format_rfc3339, parse_rfc3339


def wait_for_run(reevals: Reevaluations, run: Run, timeout_s: float = 3600) -> None:
    """A progress bar until every user of the run was re-checked (beat moves the run along)."""
    columns = (TextColumn("re-checking"), BarColumn(), MofNCompleteColumn())
    deadline = time.monotonic() + timeout_s
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("run", total=max(run.total, 1))
        while time.monotonic() < deadline:
            current = reevals.get(run.id)
            if current is None:
                break
            checked, total = reevals.progress(current)
            bar.update(task, completed=checked, total=max(total, 1))
            if current.finished_at and checked >= total:
                break
            time.sleep(0.5)
        else:
            raise click.ClickException(f"run {run.id} not finished after {timeout_s:.0f}s")


def start_recheck(audience_ids: list[str], reason: str, wait: bool) -> Run:
    reevals = Reevaluations(engine())
    run = reevals.start(audience_ids, reason)
    if wait:
        wait_for_run(reevals, run)
    return run


@click.command("reevaluate")
@click.argument("audience_refs", nargs=-1, required=True)
@click.option("--at", "at", default=None, help="Once, at this RFC 3339 time.")
@click.option("--every", "cron", default=None, help="On a cron schedule, e.g. '0 3 * * *'.")
@click.option("--wait", is_flag=True, help="Show progress until every user was re-checked.")
@friendly
def reevaluate(
    audience_refs: tuple[str, ...], at: str | None, cron: str | None, wait: bool
) -> None:
    """Re-check every user against audiences, now or later; enters and exits are sent as usual."""
    e = engine()
    store = e.audiences
    ids = [store.get(ref).id for ref in audience_refs]
    if at or cron:
        when = parse_rfc3339(at) if at else None
        item = Reevaluations(e).schedule(ids, at=when, cron=cron or "")
        click.echo(f"scheduled {item.id}: next at {format_rfc3339(item.next_at)}")
        return
    run = start_recheck(ids, "requested", wait)
    click.echo(run.id)


@click.group()
def schedule() -> None:
    """Time-driven re-evaluation: the due index and scheduled re-checks."""


@schedule.command("stats")
@click.option("--json", "as_json", is_flag=True)
@friendly
def stats(as_json: bool) -> None:
    """Users scheduled, the next due time, lateness of recent releases, runs in progress."""
    e = engine()
    s = due_stats(e)
    reevals = Reevaluations(e)
    runs: list[dict[str, object]] = []
    for run in reevals.runs():
        checked, total = reevals.progress(run)
        runs.append(
            {
                "id": run.id,
                "reason": run.reason,
                "checked": checked,
                "total": total,
                "done": bool(run.finished_at),
            }
        )
    schedules = [
        {"id": x.id, "audiences": x.audiences, "next_at": format_rfc3339(x.next_at), "cron": x.cron}
        for x in reevals.schedules()
    ]
    aside = ShardDeadLetters(e)
    aside_counts = aside.counts()
    latest = [
        {"shard": x.shard, "entry": x.entry_id, "at": x.at, "reason": x.reason}
        for x in aside.latest(5)
    ]
    next_due = format_rfc3339(s.next_due_ms * NS_PER_MS) if s.next_due_ms else None
    p50, p99 = s.percentile(0.5), s.percentile(0.99)
    worst = max(s.lateness_ms) if s.lateness_ms else None
    if as_json:
        echo_json(
            {
                "scheduled_users": s.scheduled,
                "next_due": next_due,
                "lateness_ms": {
                    "samples": len(s.lateness_ms),
                    "p50": p50,
                    "p99": p99,
                    "max": worst,
                },
                "runs": runs,
                "schedules": schedules,
                "set_aside": {
                    "total": sum(aside_counts.values()),
                    "by_shard": {str(k): v for k, v in aside_counts.items()},
                    "latest": latest,
                },
            }
        )
        return
    click.echo(f"scheduled users: {s.scheduled}")
    click.echo(f"next due:        {next_due or '-'}")
    click.echo(
        f"lateness (ms):   p50 {p50}  p99 {p99}  max {worst}  "
        f"over the last {len(s.lateness_ms)} time-driven changes"
    )
    for item in runs:
        click.echo(f"run {item['id']}: {item['checked']}/{item['total']} ({item['reason']})")
    for sched in schedules:
        click.echo(f"schedule {sched['id']}: next {sched['next_at']} {sched['cron']}")
    click.echo(f"set aside:       {sum(aside_counts.values())} shard entries", nl=False)
    click.echo(f" (by shard: {aside_counts})" if aside_counts else "")
    for item in latest:
        click.echo(
            f"  shard {item['shard']} entry {item['entry']} at {item['at']}: {item['reason']}"
        )
