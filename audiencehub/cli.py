"""The ``audiencehub`` command: one group per concept, each in its own module."""

from __future__ import annotations

import click

from audiencehub.cli_api import api_command
from audiencehub.cli_audience import audience
from audiencehub.cli_data import clock, ingest, profile
from audiencehub.cli_explain import profile_explain_command
from audiencehub.cli_filterql import eval_command, validate_command
from audiencehub.cli_job import auth, job
from audiencehub.cli_schedule import schedule
from audiencehub.cli_secret import secret
from audiencehub.emulator.cli import hub_emulator
from workers.secrets import new_key


@click.group()
def main() -> None:
    """Stream audience enter/exit triggers to Azure Event Hubs."""


@main.command("secret-key")
def secret_key() -> None:
    """Print a new key for AUDIENCEHUB_SECRET_KEY (encrypts connection strings at rest)."""
    click.echo(new_key())


audience.add_command(validate_command, "validate")
audience.add_command(eval_command, "eval")
profile.add_command(profile_explain_command, "explain")
for command in (audience, auth, job, ingest, profile, clock, schedule, secret):
    main.add_command(command)
main.add_command(hub_emulator, "hub-emulator")
main.add_command(api_command, "api")
