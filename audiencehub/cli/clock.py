"""``audiencehub clock …`` and ``audiencehub wait --idle``: moving time and waiting for the workers.

For people replaying history in test mode: set or move the clock every process reads, then wait
until the workers have applied, released and delivered everything up to that "now".
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

import click

from audiencehub.cli.support import echo_json, friendly

if TYPE_CHECKING:
    from workers.schedule.clock import RedisOffsetClock

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
NS_PER_S = 1_000_000_000


def parse_duration(text: str) -> int:
    """``90s``, ``1.5h``, ``-2d``, ``0.25w`` as ns: a sign and a fraction are fine."""
    try:
        number, unit = Decimal(text[:-1]), text[-1]
        if not number.is_finite():
            raise InvalidOperation
        return int(number * _UNITS[unit] * NS_PER_S)
    except (InvalidOperation, KeyError, IndexError, ValueError):
        raise click.BadParameter(
            f"{text!r} is not a duration like 90s, 15m, 1.5h, -2d or 1w", param_hint="DURATION"
        ) from None


def _movable() -> RedisOffsetClock:
    """The movable clock, without building an engine (no Celery, no registry): test mode only."""
    from workers.config import settings
    from workers.redisconn import state_redis
    from workers.schedule.clock import movable_clock

    cfg = settings()
    return movable_clock(cfg, state_redis(cfg))


@click.group()
def clock() -> None:
    """The movable clock (test mode only: AUDIENCEHUB_MODE=test).

    Every process reads "now" as the system time plus an offset kept in Redis, so the test clock
    keeps running at the wall clock's pace after it is set or moved.
    """


@clock.command("now", short_help="Print the engine's now (RFC 3339).")
@friendly
def clock_now() -> None:
    """Print the engine's now (RFC 3339): the system time, plus the test clock's offset in test
    mode. It keeps running: two calls a second apart print times a second apart."""
    from workers.config import settings
    from workers.redisconn import state_redis
    from workers.schedule.clock import clock_for
    from workers.timefmt import format_rfc3339

    cfg = settings()
    click.echo(format_rfc3339(clock_for(cfg, state_redis(cfg)).now_ns()))


@clock.command(
    "advance",
    context_settings={"ignore_unknown_options": True},
    short_help="Move every process's now by DURATION (may be negative).",
)
@click.argument("duration")
@friendly
def clock_advance(duration: str) -> None:
    """Move every process's "now" by DURATION: 7d, 1.5h, 90s, -2h (back in time; no "--" needed),
    units s m h d w. Prints the new now; the clock keeps running from there."""
    from workers.timefmt import format_rfc3339

    delta = parse_duration(duration)
    mc = _movable()
    mc.advance(delta)
    click.echo(format_rfc3339(mc.now_ns()))


@clock.command("set", short_help="Set every process's now to TIME (RFC 3339).")
@click.argument("time_text", metavar="TIME")
@friendly
def clock_set(time_text: str) -> None:
    """Set every process's "now" to TIME (RFC 3339, e.g. 2026-03-01T00:00:00Z); it keeps running
    from there. Going back is allowed: users already due stay due."""
    from workers.timefmt import format_rfc3339, parse_rfc3339

    try:
        target = parse_rfc3339(time_text)
    except ValueError:
        raise click.BadParameter(
            f"{time_text!r} is not an RFC 3339 time like 2026-03-01T00:00:00Z", param_hint="TIME"
        ) from None
    mc = _movable()
    mc.set(target)
    click.echo(format_rfc3339(mc.now_ns()))


@click.command("wait")
@click.option("--idle", is_flag=True, required=True, help="Wait until the system is idle.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="Give up after this many seconds (exit code 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the last check as JSON.")
@friendly
def wait_command(idle: bool, timeout_s: float, as_json: bool) -> None:
    """Wait until every shard is drained, nothing is due up to now, the running jobs' outboxes
    are empty and no backfill or re-check run is unfinished; exit code 1 on timeout."""
    from audiencehub.context import engine
    from workers.schedule.idle import wait_idle

    report = wait_idle(engine(), max(0.0, timeout_s))
    if as_json:
        echo_json(report.as_dict())
    elif report.idle:
        click.echo("idle")
    else:
        click.echo("not idle after {:g}s: {}".format(timeout_s, "; ".join(report.busy())))
    if not report.idle:
        sys.exit(1)
