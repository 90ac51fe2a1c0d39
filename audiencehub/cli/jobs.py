"""``audiencehub job …`` and ``audiencehub auth …``: where triggers go, and how it is going."""

from __future__ import annotations

import os
import sys
import time

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from audiencehub.cli.support import echo_json, friendly
from audiencehub.context import engine
from workers.audiences.registry_store import NotFound
from workers.delivery.dead_letters import DeadLetters
from workers.delivery.hub_partitions import HubPartitions
from workers.jobs.auths import MAX_PARTITIONS
from workers.jobs.control import JobControl
from workers.jobs.setup import (
    NewAuthorization,
    add_audience,
    backfill_preview,
    check_authorization,
    create_job,
)
from workers.jobs.status import job_status
from workers.jobs.store import (
    DEFAULT_FAILURE_PERIOD_S,
    DEFAULT_FIELDS,
    DEFAULT_MAX_BATCH_BYTES,
)


def _status(job_ref: str) -> dict[str, object]:
    e = engine()
    slugs = {a.id: a.slug for a in e.audiences.all()}
    return job_status(e, engine().jobs.get(job_ref), slugs)


def read_connection_string(value: str | None, env: str | None) -> str:
    """From the option, from an environment variable, or from stdin with ``-``.

    The env and stdin forms keep the key out of shell history and process listings.
    """
    if env:
        text = os.environ.get(env)
        if not text:
            raise click.ClickException(f"environment variable {env} is empty or not set")
        return text
    if value == "-" or value is None:
        if value is None and sys.stdin.isatty():
            raise click.ClickException(
                "give --connection-string, --connection-string-env NAME, or pipe it on stdin"
            )
        return sys.stdin.readline().strip()
    return value


# -- authorizations ----------------------------------------------------------------------------
@click.group()
def auth() -> None:
    """Authorizations: Event Hub connection strings, encrypted at rest, never shown again."""


@auth.command("create")
@click.option("--label", required=True)
@click.option("--connection-string", "connection_string", default=None, help="'-' reads stdin.")
@click.option("--connection-string-env", "env", default=None, help="Read it from this variable.")
@click.option("--hub", default=None, help="Event hub name, for a namespace-level string.")
@click.option(
    "--partitions",
    type=click.IntRange(1, MAX_PARTITIONS),
    default=None,
    help="The hub's partition count, where the SDK's management call cannot be made "
    "(otherwise it is learned from the hub).",
)
@friendly
def auth_create(
    label: str,
    connection_string: str | None,
    env: str | None,
    hub: str | None,
    partitions: int | None,
) -> None:
    """Store an authorization; prints its id."""
    text = read_connection_string(connection_string, env)
    click.echo(engine().auths.create(label, text, hub, partitions).id)


@auth.command("list")
@friendly
def auth_list() -> None:
    echo_json([a.public() for a in engine().auths.all()])


@auth.command("show")
@click.argument("auth_ref")
@friendly
def auth_show(auth_ref: str) -> None:
    """Namespace, hub, key name, health and how jobs send to it; never the key."""
    e = engine()
    found = engine().auths.get(auth_ref)
    echo_json({**found.public(), "delivery": HubPartitions(e.r, e.keys).layout(found).public()})


@auth.command("test")
@click.argument("auth_ref")
@friendly
def auth_test(auth_ref: str) -> None:
    """Ask the hub about itself with this key (the SDK's management call; nothing is sent).

    Proves the hub exists and accepts the key, and learns its partitions; whether the key may
    send shows at a job's first batch.
    """
    ok, detail = check_authorization(engine(), auth_ref)
    click.echo(("healthy: " if ok else "unhealthy: ") + detail)
    if not ok:
        sys.exit(1)


@auth.command("delete")
@click.argument("auth_ref")
@friendly
def auth_delete(auth_ref: str) -> None:
    """Delete an authorization; refused while a job that is not stopped uses it."""
    target = engine().auths.get(auth_ref)
    using = [j.id for j in engine().jobs.all() if j.auth_id == target.id and j.state != "stopped"]
    engine().auths.delete(target.id, using)
    click.echo(f"deleted {target.id}")


# -- jobs ---------------------------------------------------------------------------------------
@click.group()
def job() -> None:
    """Export jobs: audiences -> an Event Hub."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@job.command("create")
@click.option("--label", required=True)
@click.option("--description", default="")
@click.option("--audience", "audiences", multiple=True, required=True, help="Id or slug; repeat.")
@click.option("--auth", "auth_ref", default=None, help="An authorization id or label.")
@click.option("--connection-string", "connection_string", default=None, help="'-' reads stdin.")
@click.option("--connection-string-env", "env", default=None)
@click.option("--existing-users", is_flag=True, help="Backfill current members now.")
@click.option("--fields", default=",".join(DEFAULT_FIELDS), show_default=True)
@click.option("--events", default="enter,exit", show_default=True)
@click.option("--transport", type=click.Choice(["rest", "amqp"]), default="rest")
@click.option(
    "--max-batch-bytes",
    type=int,
    default=DEFAULT_MAX_BATCH_BYTES,
    show_default=True,
    help="Hub limit per batch: 262144 on Basic, 1000000 on Standard and up.",
)
@click.option(
    "--failure-period",
    "failure_period_s",
    type=int,
    default=DEFAULT_FAILURE_PERIOD_S,
    show_default=True,
    help="Seconds of hub errors before the job fails.",
)
@click.option(
    "--changes-only",
    is_flag=True,
    help="Messages carry only the audiences that changed, not the user's other "
    "current audiences of the job.",
)
@click.option("--dry-run", is_flag=True, help="Report what a backfill would send; create nothing.")
@friendly
def job_create(
    label: str,
    description: str,
    audiences: tuple[str, ...],
    auth_ref: str | None,
    connection_string: str | None,
    env: str | None,
    existing_users: bool,
    fields: str,
    events: str,
    transport: str,
    max_batch_bytes: int,
    failure_period_s: int,
    changes_only: bool,
    dry_run: bool,
) -> None:
    """Start a job that sends its audiences' enters and exits; prints the job id."""
    e = engine()
    if dry_run:
        echo_json(backfill_preview(e, list(audiences)))
        return
    auth: str | NewAuthorization = auth_ref or NewAuthorization(
        read_connection_string(connection_string, env)
    )
    created = create_job(
        e,
        label,
        auth,
        list(audiences),
        existing_users=existing_users,
        fields=_csv(fields),
        events=_csv(events),
        transport=transport,
        description=description,
        max_batch_bytes=max_batch_bytes,
        failure_period_s=failure_period_s,
        changes_only=changes_only,
    )
    click.echo(created.id)


@job.command("list")
@friendly
def job_list() -> None:
    for j in engine().jobs.all():
        status = _status(j.id)
        click.echo(f"{j.id}  {status['state']:<11} backlog {status['backlog']:<7} {j.label}")


@job.command("show")
@click.argument("job_ref")
@click.option("--history", is_flag=True, help="Also list state changes.")
@friendly
def job_show(job_ref: str, history: bool) -> None:
    """State, audiences, counts, backlog, oldest unsent age, last error, throughput."""
    status = _status(job_ref)
    if history:
        status["history"] = JobControl(engine()).history(str(status["id"]))
    echo_json(status)


@job.command("pause")
@click.argument("job_ref")
@friendly
def job_pause(job_ref: str) -> None:
    """Stop sending; triggers keep collecting in the outbox."""
    click.echo(JobControl(engine()).pause(job_ref).state)


@job.command("resume")
@click.argument("job_ref")
@friendly
def job_resume(job_ref: str) -> None:
    """Send again (after a pause, or after fixing what made the job fail)."""
    click.echo(JobControl(engine()).resume(job_ref).state)


@job.command("stop")
@click.argument("job_ref")
@friendly
def job_stop(job_ref: str) -> None:
    """End the job for good: no new triggers are collected."""
    click.echo(JobControl(engine()).stop(job_ref).state)


@job.command("add-audience")
@click.argument("job_ref")
@click.argument("audience_ref")
@click.option("--existing-users", is_flag=True, help="Backfill this audience's current members.")
@friendly
def job_add_audience(job_ref: str, audience_ref: str, existing_users: bool) -> None:
    echo_json(add_audience(engine(), job_ref, audience_ref, existing_users).as_dict())


@job.command("deadletters")
@click.argument("job_ref")
@click.option("--count", default=100, show_default=True)
@friendly
def job_deadletters(job_ref: str, count: int) -> None:
    """Messages the hub refused for good, with the reason."""
    job_id = engine().jobs.get(job_ref).id
    entries = DeadLetters(engine()).entries(job_id, count)
    echo_json(
        [
            {
                "id": d.id,
                "user_id": d.user_id,
                "reason": d.reason,
                "at": d.at,
                "idempotency_key": d.idempotency_key,
            }
            for d in entries
        ]
    )


@job.command("replay")
@click.argument("job_ref")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True)
@friendly
def job_replay(job_ref: str, ids: tuple[str, ...], replay_all: bool) -> None:
    """Put dead letters back in the outbox (all, or by id)."""
    if not ids and not replay_all:
        raise click.ClickException("give dead letter ids, or --all")
    job_id = engine().jobs.get(job_ref).id
    count = DeadLetters(engine()).replay(job_id, None if replay_all else list(ids))
    click.echo(f"replayed {count}")


@job.command("watch")
@click.argument("job_ref")
@click.option("--interval", default=1.0, show_default=True)
@click.option("--until-idle", is_flag=True, help="Exit once backfilled and the backlog is empty.")
@friendly
def job_watch(job_ref: str, interval: float, until_idle: bool) -> None:
    """A live view: state, counts, backlog and the backfill progress bar."""
    job_id = engine().jobs.get(job_ref).id
    bar = Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn())
    task = bar.add_task("backfill", total=1)
    try:
        with Live(console=Console(), refresh_per_second=4) as live:
            while True:
                try:
                    status = _status(job_id)
                except NotFound:
                    raise click.ClickException(f"job {job_id} disappeared") from None
                backfill = status["backfill"]
                assert isinstance(backfill, dict)
                bar.update(task, completed=backfill["scanned"], total=max(backfill["total"], 1))
                live.update(Group(_table(status), bar))
                idle = not backfill["active"] and status["backlog"] == 0
                if until_idle and idle:
                    return
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _sending(status: dict[str, object]) -> str:
    layout = status["partitions"]
    assert isinstance(layout, dict)
    count = f", {layout['count']} partitions" if layout.get("count") else ""
    return f"{status['transport']}: {layout['mode']}{count}"


def _table(status: dict[str, object]) -> Table:
    """Every value is a plain ``Text``: a label like ``[/bad]`` is shown, not read as markup."""
    title = Text(f"job {status['label']} ({status['id']})")
    table = Table(title=title, show_header=False)
    counts = status["counts"]
    assert isinstance(counts, dict)
    rows = [
        ("state", f"{status['state']}: {status['state_meaning']}"),
        ("sent", counts["sent"]),
        ("backfilled", counts["backfilled"]),
        ("failed attempts", counts["failed"]),
        ("dead-lettered", counts["dead_lettered"]),
        ("backlog", status["backlog"]),
        ("oldest unsent", f"{status['oldest_unsent_age_s']} s"),
        ("throughput", f"{status['throughput_per_s_last_minute']} msg/s (last minute)"),
        ("sending", _sending(status)),
        ("last error", status["last_error"] or "-"),
    ]
    for name, value in rows:
        table.add_row(Text(name), Text(str(value)))
    return table
