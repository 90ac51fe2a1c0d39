"""``audience validate`` and ``audience eval``: FilterQL at the terminal, with no server needed.

``validate`` answers "does this parse and compile?" with the offending line and a caret under the
column; ``eval`` runs a filter against a profile file at a chosen instant and says when the answer
would next flip on its own. The ``audience`` group attaches both commands.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from workers.filterql import Filter, FilterQLError, compile_filter, compile_set, parse_statements
from workers.filterql.compiler import compile_statement
from workers.filterql.explain import explain
from workers.pipeline.profile import Profile
from workers.pipeline.profiles import DocumentError, from_document
from workers.timefmt import format_rfc3339, parse_rfc3339


def _fail(exc: FilterQLError, source: str = "") -> NoReturn:
    """Print the error sentence, the offending line and a caret; exit 1."""
    where = f" in {source}" if source else ""
    click.echo(f"error{where}: {exc}", err=True)
    if exc.text:
        click.echo(exc.caret(), err=True)
    if exc.expected:
        click.echo("expected: " + ", ".join(exc.expected), err=True)
    sys.exit(1)


def _stub(slug: str) -> Filter:
    """Stands in for an included audience when only the syntax is being checked."""
    return compile_filter("FILTER *")


@click.command("validate")
@click.argument("text")
def validate_command(text: str) -> None:
    """Check that TEXT is valid FilterQL ('FILTER …'; several statements may be separated by ';').

    Included audiences are not looked up here, only their syntax is checked.
    """
    try:
        for st in parse_statements(text):
            compile_statement(st, text, _stub)
    except FilterQLError as exc:
        if not exc.text:
            exc.text = text
        _fail(exc)
    click.echo("ok")


def load_profile(path: Path) -> Profile:
    """A profile file: a JSON object of fields, plus optional ``_events``, ``_created``, ``_modified``.

    ``_events`` maps an event name to its occurrence times (RFC 3339 strings or ns integers).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read profile {path}: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"profile {path} must hold a JSON object")
    try:
        return from_document(data)
    except DocumentError as exc:
        raise click.BadParameter(str(exc)) from None


def _includes(path: Path | None) -> dict[str, Filter]:
    """Audiences from an .fql file: statements separated by ';', each named by its ALIAS."""
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        statements = parse_statements(text)
    except FilterQLError as exc:
        _fail(exc, str(path))
    texts: dict[str, str] = {}
    for st in statements:
        if not st.alias:
            _fail(
                FilterQLError(
                    "every statement in an includes file needs an ALIAS (its slug)",
                    line=st.pos.line,
                    column=st.pos.column,
                    text=text,
                ),
                str(path),
            )
        texts[str(st.alias)] = st.text
    try:
        return compile_set(texts)
    except FilterQLError as exc:
        _fail(exc, str(path))


@click.command("eval")
@click.option("--filter", "filter_text", required=True, help="The FilterQL text ('FILTER …').")
@click.option(
    "--profile",
    "profile_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON profile: fields, plus optional _events, _created, _modified.",
)
@click.option(
    "--now", "now_text", default=None, help="Evaluate at this RFC 3339 time (default: now)."
)
@click.option(
    "--includes",
    "includes_path",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .fql file of audiences (each with ALIAS) that the filter may INCLUDE.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option(
    "--explain",
    "explain_it",
    is_flag=True,
    help="Also show the filter as a tree: each clause's value, what it read, what decided it.",
)
def eval_command(
    filter_text: str,
    profile_path: Path,
    now_text: str | None,
    includes_path: Path | None,
    as_json: bool,
    explain_it: bool = False,
) -> None:
    """Evaluate a filter against a profile file: prints true/false and the next change time."""
    if now_text is None:
        now = time.time_ns()
    else:
        try:
            now = parse_rfc3339(now_text)
        except ValueError:
            raise click.BadParameter(
                f"{now_text!r} is not an RFC 3339 time", param_hint="--now"
            ) from None
    profile = load_profile(profile_path)
    known = _includes(includes_path)

    def resolve(slug: str) -> Filter:
        if slug in known:
            return known[slug]
        for key, f in known.items():
            if key.lower() == slug.lower():
                return f
        raise FilterQLError(f"unknown audience {slug!r} (give it in --includes)")

    try:
        compiled = compile_filter(filter_text, resolve)
    except FilterQLError as exc:
        _fail(exc)
    matched = compiled.matches(profile, now)
    change = compiled.next_change(profile, now)
    explained = explain(compiled, profile, now) if explain_it else None
    if as_json:
        answer: dict[str, Any] = {
            "matches": matched,
            "now": format_rfc3339(now),
            "next_change": format_rfc3339(change) if change is not None else None,
            "next_change_ns": change,
            "time_dependent": compiled.time_dependent,
            "fields": sorted(compiled.fields),
            "events": sorted(compiled.events),
            "includes": sorted(compiled.includes),
        }
        if explained is not None:
            answer["explanation"] = explained.as_dict()
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo("true" if matched else "false")
    if explained is not None:
        click.echo(explained.render_text())  # ends with the "next change: …" sentence
        return
    if change is None:
        click.echo("next change: never (with no new data)")
    else:
        click.echo(f"next change: {format_rfc3339(change)}")
