"""What every command shares: turning known errors into one clear line and exit code 1."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from workers.config import ConfigError
from workers.eventhub.connstr import ConnectionStringError
from workers.filterql import FilterQLError
from workers.registry_store import Conflict, NotFound

F = TypeVar("F", bound=Callable[..., Any])
KNOWN = (ConfigError, ConnectionStringError, FilterQLError, Conflict, NotFound)


def friendly(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KNOWN as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def echo_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
