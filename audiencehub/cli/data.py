"""``audiencehub ingest`` and ``profile …``: data in, and a look at users."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from itertools import islice
from typing import BinaryIO

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from audiencehub.cli.support import echo_json, friendly
from audiencehub.context import engine
from workers.pipeline.entries import DATA, SCORE, Kind
from workers.pipeline.ingest import Ingestor, IngestRefused, IngestResult, Item, ndjson_items
from workers.pipeline.profiles import describe, stored_profile

MAX_ERRORS_SHOWN = 50
CHUNK_LINES = 1000
"""Lines per all-or-nothing write: a file is stored in order, a chunk at a time."""


def _report(result: IngestResult, as_json: bool, stopped: str | None = None) -> None:
    """The summary, then the exit code. User text (a rejected line, a field name) is printed as
    plain text, never read as rich markup: a line holding ``[/red]`` is shown, not obeyed."""
    if as_json:
        out = result.as_dict()
        if stopped:
            out["stopped"] = stopped
        echo_json(out)
    else:
        err = Console(stderr=True, highlight=False)
        for error in result.errors[:MAX_ERRORS_SHOWN]:
            err.print(Text.assemble(("rejected", "red"), " ", str(error)))
        if result.rejected > MAX_ERRORS_SHOWN:
            err.print(f"... and {result.rejected - MAX_ERRORS_SHOWN} more rejected", markup=False)
        dup = f" ({result.duplicates} duplicates, not applied again)" if result.duplicates else ""
        click.echo(f"accepted {result.accepted}, rejected {result.rejected}{dup}")
        if stopped:
            click.echo(f"stopped: {stopped}", err=True)
    if stopped:
        sys.exit(3)
    if result.rejected:
        sys.exit(1 if result.accepted == 0 else 2)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


def _where(item: Item) -> str:
    return item[0]


def _store(
    ingestor: Ingestor, items: Iterator[Item], kind: Kind, max_wait_s: float
) -> tuple[IngestResult, str | None]:
    """Store the lines chunk by chunk, each chunk all-or-nothing and in order.

    While the backlog is over its bound the chunk waits (up to ``max_wait_s`` in all) for the
    workers to catch up; when Redis refuses writes, or the wait runs out, the command stops and
    says from which line nothing was stored.
    """
    total = IngestResult()
    waited = 0.0
    err = Console(stderr=True, highlight=False)
    while chunk := list(islice(items, CHUNK_LINES)):
        while True:
            try:
                part = ingestor.ingest(iter(chunk), kind)
                break
            except IngestRefused as exc:
                if exc.kind == "backlog" and waited < max_wait_s:
                    err.print(f"waiting {exc.retry_after_s} s: {exc.reason}", markup=False)
                    time.sleep(exc.retry_after_s)
                    waited += exc.retry_after_s
                    continue
                first = _where(chunk[0])
                return total, (
                    f"{exc.reason}. Nothing from {first} on was stored (everything before it "
                    f"was); send the rest again from {first}"
                )
        total.accepted += part.accepted
        total.duplicates += part.duplicates
        total.errors += part.errors
    return total, None


@click.command("ingest")
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result (with every error) as JSON."
)
@click.option("--scores", is_flag=True, help="Profile updates: merge fields, record no event.")
@click.option(
    "--max-wait",
    "max_wait_s",
    default=600.0,
    show_default=True,
    help="Seconds to wait in all while the backlog is full before stopping.",
)
@friendly
def ingest(source: str, as_json: bool, scores: bool, max_wait_s: float) -> None:
    """Accept NDJSON events from FILE or '-' (stdin); one line per event.

    Lines are stored in chunks of 1,000, each all-or-nothing, in order. Exit code 0 when all
    were accepted, 2 when some were rejected, 1 when none were accepted, 3 when Redis refused
    writes part-way (the message says from which line to send again).
    """
    ingestor = Ingestor(engine())
    kind = SCORE if scores else DATA
    show = sys.stderr.isatty() and not as_json
    if source == "-":
        result, stopped = _store(ingestor, ndjson_items(_lines(sys.stdin.buffer)), kind, max_wait_s)
    else:
        size = os.path.getsize(source)
        columns = (TextColumn("ingest"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        bar = Progress(*columns, disable=not show, console=Console(stderr=True))
        with bar, bar.open(source, "rb", total=size) as handle:
            result, stopped = _store(ingestor, ndjson_items(_lines(handle)), kind, max_wait_s)
    _report(result, as_json, stopped)


@click.group()
def profile() -> None:
    """Users' profiles."""


@profile.command("show")
@click.argument("user_id")
@friendly
def profile_show(user_id: str) -> None:
    """Print a user's merged fields, event counts and memberships."""
    e = engine()
    echo_json(describe(e, stored_profile(e, user_id)))


@profile.command("set")
@click.argument("user_id")
@click.argument("assignments", nargs=-1, required=True)
@friendly
def profile_set(user_id: str, assignments: tuple[str, ...]) -> None:
    """Update score fields (field=value; JSON values allowed) without recording an event."""
    import orjson

    fields: dict[str, object] = {"user_id": user_id}
    for pair in assignments:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.ClickException(f"{pair!r} is not field=value")
        try:
            fields[name] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            fields[name] = raw
    items: list[Item] = [("argument", fields, None)]
    result = Ingestor(engine()).ingest(iter(items), SCORE)
    if result.errors:
        raise click.ClickException(str(result.errors[0]))
    click.echo("accepted")
