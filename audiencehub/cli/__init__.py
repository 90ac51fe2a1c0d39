"""The ``audiencehub`` command: one group per concept, each in its own module, loaded when run.

A script calls the CLI often, so ``audiencehub --help`` and each command import only what they
need: the modules below are imported when their command runs (or shows its own help), and the
top-level help lists them from :data:`COMMANDS` without importing any.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click

Loader = Callable[[], click.Command]


def _attr(module: str, name: str) -> Loader:
    def load() -> click.Command:
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    return load


def _audience() -> click.Command:
    from audiencehub.cli.audiences import audience
    from audiencehub.cli.filterql import eval_command, validate_command

    audience.add_command(validate_command, "validate")
    audience.add_command(eval_command, "eval")
    return audience


def _profile() -> click.Command:
    from audiencehub.cli.data import profile
    from audiencehub.cli.explain import profile_explain_command

    profile.add_command(profile_explain_command, "explain")
    return profile


@click.command("secret-key")
def secret_key() -> None:
    """Print a new key for AUDIENCEHUB_SECRET_KEY (encrypts connection strings at rest)."""
    from workers.jobs.secrets import new_key

    click.echo(new_key())


COMMANDS: dict[str, tuple[Loader, str]] = {
    "api": (
        _attr("audiencehub.cli.api", "api_command"),
        "Serve the HTTP API (FastAPI on uvicorn); see docs/api.md.",
    ),
    "audience": (_audience, "Audiences written in FilterQL."),
    "auth": (
        _attr("audiencehub.cli.jobs", "auth"),
        "Event Hub connection strings, encrypted at rest.",
    ),
    "clock": (
        _attr("audiencehub.cli.clock", "clock"),
        "The movable clock (test mode only: AUDIENCEHUB_MODE=test).",
    ),
    "hub-emulator": (
        _attr("audiencehub.emulator.cli", "hub_emulator"),
        "Local Event Hubs stand-in (REST, SAS checks, faults).",
    ),
    "ingest": (
        _attr("audiencehub.cli.data", "ingest"),
        "Accept NDJSON events from FILE or '-' (stdin).",
    ),
    "job": (_attr("audiencehub.cli.jobs", "job"), "Export jobs: audiences -> an Event Hub."),
    "profile": (_profile, "Users' profiles."),
    "schedule": (
        _attr("audiencehub.cli.schedule", "schedule"),
        "Time-driven re-evaluation: due index, re-checks.",
    ),
    "secret": (
        _attr("audiencehub.cli.secret", "secret"),
        "Keys that encrypt connection strings at rest.",
    ),
    "secret-key": (lambda: secret_key, "Print a new key for AUDIENCEHUB_SECRET_KEY."),
    "wait": (
        _attr("audiencehub.cli.clock", "wait_command"),
        "Wait until the workers are idle: wait --idle.",
    ),
}
"""name -> (how to load the command, its one-line help for ``audiencehub --help``)."""


class LazyGroup(click.Group):
    """A group whose commands are imported only when one of them is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        return entry[0]() if entry else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
def main() -> None:
    """Stream audience enter/exit triggers to Azure Event Hubs."""
