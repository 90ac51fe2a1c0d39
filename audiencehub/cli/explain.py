"""``profile explain``: why a stored user is in or out of each audience, and what changes it next.

The command objects live here for the ``audiencehub`` group to mount:

* ``profile_explain_command`` → ``audiencehub profile explain USER [--audience SLUG …] [--at T]
  [--json]``;
* ``explain_eval_command`` is ``audience eval`` itself (already mounted): it takes ``--explain``
  and prints the same tree for a profile file, so there is one command, not a copy.
"""

from __future__ import annotations

from typing import Any

import click

from audiencehub.cli.filterql import eval_command
from audiencehub.cli.support import echo_json, friendly
from audiencehub.context import engine
from workers.audiences.explain import explain_user
from workers.filterql.explain import render
from workers.timefmt import parse_rfc3339

explain_eval_command = eval_command
"""``audience eval --explain``: the flag lives on ``eval_command`` (audiencehub/cli/filterql.py)."""


def render_entry(entry: dict[str, Any]) -> str:
    """One audience of ``explain_user`` as text: a headline, the stored state, then the tree."""
    audience = entry["audience"]
    stored = entry["stored"]
    state = "in" if entry["in"] else "out"
    kept = f"stored: in since {stored['enter']}" if stored["in"] else "stored: out"
    verdict = "agrees" if entry["agrees"] else f"DISAGREES: {entry['disagreement']}"
    lines = [
        f"{audience['slug']} ({audience['id']}): {state} at {entry['at']}",
        f"{kept} ({verdict})",
        render(entry),
    ]
    return "\n".join(lines)


@click.command("explain")
@click.argument("user_id")
@click.option(
    "--audience",
    "audiences",
    multiple=True,
    metavar="SLUG",
    help="An audience slug or id (repeat for several; default: every audience).",
)
@click.option("--at", "at_text", default=None, help="Explain at this RFC 3339 time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanations as JSON.")
@friendly
def profile_explain_command(
    user_id: str, audiences: tuple[str, ...], at_text: str | None, as_json: bool
) -> None:
    """Explain USER's membership of each audience: the filter as a tree with each clause's value
    for this user, what decided it, the stored enter time, and the next change with its reason."""
    at: int | None = None
    if at_text is not None:
        try:
            at = parse_rfc3339(at_text)
        except ValueError:
            raise click.BadParameter(
                f"{at_text!r} is not an RFC 3339 time", param_hint="--at"
            ) from None
    entries = explain_user(engine(), user_id, list(audiences) or None, at)
    if as_json:
        echo_json(entries)
        return
    if not entries:
        click.echo("no audiences")
        return
    click.echo("\n\n".join(render_entry(e) for e in entries))
