"""The ``audiencehub`` command."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """Stream audience enter/exit triggers to Azure Event Hubs."""
