"""``audiencehub job …`` and ``audiencehub auth …``: where triggers go."""

from __future__ import annotations

import os
import sys

import click
import orjson

from audiencehub.cli_support import echo_json, friendly
from audiencehub.context import engine
from workers.audiences import AudienceStore
from workers.auths import AuthStore
from workers.jobs import DEFAULT_FIELDS, STATES, Job, JobStore
from workers.redisconn import as_bytes
from workers.timefmt import format_rfc3339


def _auths() -> AuthStore:
    e = engine()
    return AuthStore(e.r, e.keys, e.cfg)


def _jobs() -> JobStore:
    e = engine()
    return JobStore(e.r, e.keys)


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


@click.group()
def auth() -> None:
    """Authorizations: Event Hub connection strings, encrypted at rest, never shown again."""


@auth.command("create")
@click.option("--label", required=True)
@click.option("--connection-string", "connection_string", default=None, help="'-' reads stdin.")
@click.option("--connection-string-env", "env", default=None, help="Read it from this variable.")
@click.option("--hub", default=None, help="Event hub name, for a namespace-level string.")
@friendly
def auth_create(
    label: str, connection_string: str | None, env: str | None, hub: str | None
) -> None:
    """Store an authorization; prints its id."""
    text = read_connection_string(connection_string, env)
    click.echo(_auths().create(label, text, hub).id)


@auth.command("list")
@friendly
def auth_list() -> None:
    echo_json([a.public() for a in _auths().all()])


@auth.command("show")
@click.argument("auth_ref")
@friendly
def auth_show(auth_ref: str) -> None:
    echo_json(_auths().get(auth_ref).public())


def job_status(job: Job) -> dict[str, object]:
    e = engine()
    raw_stats: dict[bytes, bytes] = e.r.hgetall(e.keys.job_stats(job.id))  # type: ignore[assignment]
    stats = {k.decode(): int(v) for k, v in raw_stats.items()}
    pipe = e.r.pipeline(transaction=False)
    for shard in range(e.cfg.shards):
        pipe.xlen(e.keys.outbox(shard, job.id))
    backlog = sum(pipe.execute())
    error = as_bytes(e.r.get(e.keys.job_error(job.id)))
    slugs = {a.id: a.slug for a in AudienceStore(e.r, e.keys).all()}
    return {
        "id": job.id,
        "label": job.label,
        "state": job.state,
        "state_meaning": STATES[job.state],
        "reason": job.reason,
        "audiences": [{"id": a, "slug": slugs.get(a, "?")} for a in job.audiences],
        "fields": list(job.fields),
        "events": list(job.events),
        "transport": job.transport,
        "created": format_rfc3339(job.created),
        "sent": stats.get("sent", 0),
        "send_errors": stats.get("send_errors", 0),
        "backlog": backlog,
        "last_error": orjson.loads(error) if error else None,
    }


@click.group()
def job() -> None:
    """Export jobs: audiences -> an Event Hub."""


@job.command("create")
@click.option("--label", required=True)
@click.option("--description", default="")
@click.option("--audience", "audiences", multiple=True, required=True, help="Id or slug; repeat.")
@click.option("--auth", "auth_ref", default=None, help="An authorization id or label.")
@click.option("--connection-string", "connection_string", default=None, help="'-' reads stdin.")
@click.option("--connection-string-env", "env", default=None)
@click.option("--fields", default=",".join(DEFAULT_FIELDS), show_default=True)
@click.option("--events", default="enter,exit", show_default=True)
@click.option("--transport", type=click.Choice(["rest", "amqp"]), default="rest")
@friendly
def job_create(
    label: str,
    description: str,
    audiences: tuple[str, ...],
    auth_ref: str | None,
    connection_string: str | None,
    env: str | None,
    fields: str,
    events: str,
    transport: str,
) -> None:
    """Start a job that sends its audiences' enters and exits; prints the job id."""
    e = engine()
    store = AudienceStore(e.r, e.keys)
    audience_ids = [store.get(ref).id for ref in audiences]
    if auth_ref:
        auth_id = _auths().get(auth_ref).id
    else:
        text = read_connection_string(connection_string, env)
        auth_id = _auths().create(f"{label} hub", text).id
    created = _jobs().create(
        label,
        auth_id,
        audience_ids,
        fields=tuple(f.strip() for f in fields.split(",") if f.strip()),
        events=tuple(x.strip() for x in events.split(",") if x.strip()),
        transport=transport,
        description=description,
    )
    click.echo(created.id)


@job.command("list")
@friendly
def job_list() -> None:
    for j in _jobs().all():
        click.echo(f"{j.id}  {j.state:<11} {j.label}")


@job.command("show")
@click.argument("job_ref")
@friendly
def job_show(job_ref: str) -> None:
    echo_json(job_status(_jobs().get(job_ref)))
