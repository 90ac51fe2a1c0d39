"""``audiencehub ingest`` and ``profile …``: data in, and a look at users."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from audiencehub.cli_support import echo_json, friendly
from audiencehub.context import engine
from workers.entries import DATA, SCORE
from workers.ingest import Ingestor, IngestResult, Item, ndjson_items
from workers.profiles import describe, stored_profile

MAX_ERRORS_SHOWN = 50


def _report(result: IngestResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.as_dict())
    else:
        err = Console(stderr=True)
        for error in result.errors[:MAX_ERRORS_SHOWN]:
            err.print(f"[red]rejected[/red] {error}", markup=True, highlight=False)
        if result.rejected > MAX_ERRORS_SHOWN:
            err.print(f"... and {result.rejected - MAX_ERRORS_SHOWN} more rejected")
        click.echo(f"accepted {result.accepted}, rejected {result.rejected}")
    if result.rejected:
        sys.exit(1 if result.accepted == 0 else 2)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    yield from stream


@click.command("ingest")
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result (with every error) as JSON."
)
@click.option("--scores", is_flag=True, help="Profile updates: merge fields, record no event.")
@friendly
def ingest(source: str, as_json: bool, scores: bool) -> None:
    """Accept NDJSON events from FILE or '-' (stdin); one line per event.

    Exit code 0 when all were accepted, 2 when some were rejected, 1 when none were accepted.
    """
    ingestor = Ingestor(engine())
    kind = SCORE if scores else DATA
    show = sys.stderr.isatty() and not as_json
    if source == "-":
        result = ingestor.ingest(ndjson_items(_lines(sys.stdin.buffer)), kind)
    else:
        size = os.path.getsize(source)
        columns = (TextColumn("ingest"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        bar = Progress(*columns, disable=not show, console=Console(stderr=True))
        with bar, bar.open(source, "rb", total=size) as handle:
            result = ingestor.ingest(ndjson_items(_lines(handle)), kind)
    _report(result, as_json)


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
