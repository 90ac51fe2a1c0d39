"""``audiencehub secret …``: the keys that encrypt connection strings at rest."""

from __future__ import annotations

import sys

import click

from audiencehub.cli.support import friendly
from audiencehub.context import engine
from workers.jobs.secrets import new_key


@click.group()
def secret() -> None:
    """Keys that encrypt connection strings at rest (AUDIENCEHUB_SECRET_KEY)."""


@secret.command("new")
def secret_new() -> None:
    """Print a new key (the same as 'audiencehub secret-key')."""
    click.echo(new_key())


@secret.command("rotate")
@friendly
def secret_rotate() -> None:
    """Re-encrypt every stored secret with the first key of AUDIENCEHUB_SECRET_KEY.

    Rotation: make a key ('audiencehub secret new'), set AUDIENCEHUB_SECRET_KEY=NEW,OLD on every
    process (workers and API read both), run this, then drop OLD. Exit code 1 when a secret opens
    with none of the keys (it is left as it is; the output names it).
    """
    e = engine()
    store = e.auths
    labels = {a.id: a.label for a in store.all()}
    done, unreadable = store.reseal_all()
    click.echo(f"re-encrypted {len(done)} authorization(s) with the first key")
    for auth_id in unreadable:
        click.echo(
            f"cannot decrypt authorization {labels.get(auth_id, '?')!r} ({auth_id}) with any "
            "configured key; add the key it was made with, or create it again",
            err=True,
        )
    if unreadable:
        sys.exit(1)
