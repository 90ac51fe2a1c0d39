"""Shared plumbing for the small definition stores (audiences, jobs, authorizations)."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from workers.keys import Keys
from workers.redisconn import Redis


def new_id() -> str:
    """32 hex characters, the shape of the seed's audience and subscription ids."""
    return secrets.token_hex(16)


class NotFound(LookupError):
    """A definition named by the user does not exist; the message says which."""


class Conflict(ValueError):
    """A change would break an invariant (duplicate slug, auth in use, cycle...)."""


class DefinitionStore:
    """JSON definitions in one hash, with the registry version bumped on every change."""

    def __init__(self, r: Redis, keys: Keys, hash_key: str) -> None:
        self.r = r
        self.keys = keys
        self.hash_key = hash_key

    def raw_get(self, item_id: str) -> dict[str, Any] | None:
        blob = self.r.hget(self.hash_key, item_id)
        return orjson.loads(blob) if blob else None

    def raw_all(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for v in self.r.hgetall(self.hash_key).values()]

    def raw_put(self, item_id: str, data: dict[str, Any]) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.hash_key, item_id, orjson.dumps(data))
        pipe.incr(self.keys.registry_version)
        pipe.execute()
