"""``audiencehub audience …``: create, list, show and edit audiences."""

from __future__ import annotations

import click

from audiencehub.cli.schedule import reevaluate, start_recheck
from audiencehub.cli.support import echo_json, friendly
from audiencehub.context import engine
from workers.audiences.store import Audience
from workers.timefmt import format_rfc3339


def _public(a: Audience) -> dict[str, object]:
    return {
        "id": a.id,
        "slug": a.slug,
        "filter": a.filter,
        "includes": list(a.includes),
        "description": a.description,
        "created": format_rfc3339(a.created),
        "updated": format_rfc3339(a.updated),
    }


@click.group()
def audience() -> None:
    """Audiences written in FilterQL."""


@audience.command("create")
@click.option("--slug", required=True, help="Short name, used by INCLUDE and in messages.")
@click.option("--filter", "text", required=True, help="FilterQL, e.g. 'FILTER EXISTS email'.")
@click.option("--description", default="")
@click.option("--wait", is_flag=True, help="Wait until existing users were checked against it.")
@friendly
def create(slug: str, text: str, description: str, wait: bool) -> None:
    """Store an audience and check existing users against it; prints its 32-hex id."""
    created = engine().audiences.create(slug, text, description)
    start_recheck([created.id], f"audience {slug} created", wait)
    click.echo(created.id)


@audience.command("update")
@click.argument("audience_ref")
@click.option("--filter", "text", required=True)
@click.option("--wait", is_flag=True, help="Wait until every user was re-checked.")
@friendly
def update(audience_ref: str, text: str, wait: bool) -> None:
    """Replace an audience's filter; users who no longer match exit, new matches enter."""
    updated = engine().audiences.update_filter(audience_ref, text)
    start_recheck([updated.id], f"audience {updated.slug} edited", wait)
    echo_json(_public(updated))


audience.add_command(reevaluate)


@audience.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly
def list_(as_json: bool) -> None:
    audiences = engine().audiences.all()
    if as_json:
        echo_json([_public(a) for a in audiences])
        return
    for a in audiences:
        click.echo(f"{a.id}  {a.slug:<24} {a.filter}")


@audience.command("show")
@click.argument("audience_ref")
@friendly
def show(audience_ref: str) -> None:
    echo_json(_public(engine().audiences.get(audience_ref)))
