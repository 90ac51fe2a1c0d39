"""What every command shares: turning known errors into one clear line and exit code 1.

No command shows a traceback for something a user can cause or fix: bad input, a missing
setting, an unreachable or full Redis. Only a bug does.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import orjson
import redis

from workers.audiences.registry_store import Conflict, NotFound
from workers.config import ConfigError, settings
from workers.delivery.eventhub.connstr import ConnectionStringError
from workers.filterql import FilterQLError
from workers.pipeline.ingest import IngestRefused, TooManyEvents
from workers.redisconn import write_refusal

F = TypeVar("F", bound=Callable[..., Any])
KNOWN = (ConfigError, ConnectionStringError, FilterQLError, Conflict, NotFound, TooManyEvents)


def redis_where() -> str:
    """host:port of the configured Redis, never its password."""
    try:
        parts = urlsplit(settings().redis_url)
    except ConfigError:
        return "REDIS_URL"
    return f"{parts.hostname}:{parts.port or 6379}"


def friendly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KNOWN as exc:
            raise click.ClickException(str(exc)) from None
        except IngestRefused as exc:
            raise click.ClickException(
                f"{exc.reason}; nothing was stored, try again in {exc.retry_after_s} s"
            ) from None
        except redis.exceptions.AuthenticationError:
            raise click.ClickException(
                f"Redis at {redis_where()} refused the credentials in REDIS_URL"
            ) from None
        except redis.RedisError as exc:
            reason = write_refusal(exc)
            if reason is None:
                raise
            down = isinstance(exc, redis.ConnectionError | redis.TimeoutError)
            if down and not isinstance(exc, redis.exceptions.BusyLoadingError):
                raise click.ClickException(
                    f"cannot reach Redis at {redis_where()}; is it running? (REDIS_URL)"
                ) from None
            raise click.ClickException(f"{reason} (Redis at {redis_where()})") from None

    return wrapper  # type: ignore[return-value]


def echo_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
