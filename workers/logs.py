"""Structured logs: one JSON object per line, with job and shard ids, never a secret.

Engine modules log through ``logging.getLogger("audiencehub.…")`` with ``extra={"job": …,
"shard": …}``; ``JsonFormatter`` turns those into fields. What is logged is ids, counts and hub
reasons: no connection string, key, or profile content beyond a user id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                out[name] = _without_task_args(value) if name == "data" else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _without_task_args(value: Any) -> Any:
    """Celery passes a task's arguments to its log calls as ``extra={"data": {...}}`` (on every
    failure, as the full repr); those may be events, people's data, so they are left out."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in ("args", "kwargs")}
    return value


def use_json(logger: logging.Logger) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
