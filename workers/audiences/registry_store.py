"""Shared plumbing for the small definition stores (audiences, jobs, authorizations)."""

from __future__ import annotations

import secrets
from typing import Any, cast

import orjson

from workers.keys import Keys
from workers.lua import script
from workers.redisconn import Redis

ATTEMPTS = 10


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
        self._put_if = script(r, "registry_put")

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

    def version(self) -> int:
        return int(cast(bytes | None, self.r.get(self.keys.registry_version)) or 0)

    def by_label(self, label: str, kind: str) -> dict[str, Any] | None:
        """The one definition with this label; Conflict when several have it (made before labels
        were unique), so a lookup never picks one of them silently."""
        found = [d for d in self.raw_all() if d.get("label") == label]
        if len(found) > 1:
            ids = ", ".join(sorted(d["id"] for d in found))
            raise Conflict(f"{len(found)} {kind}s are labelled {label!r} ({ids}); use the id")
        return found[0] if found else None

    def check_label_free(self, label: str, kind: str) -> None:
        if any(d.get("label") == label or d.get("id") == label for d in self.raw_all()):
            article = "an" if kind[0] in "aeiou" else "a"
            raise Conflict(f"{article} {kind} labelled {label!r} exists already; labels are unique")

    def put_new_labelled(self, item_id: str, data: dict[str, Any], kind: str) -> None:
        """Store a new definition whose label no other has, atomically with that check (a
        compare-and-set on the registry version, so two creates cannot both take a label)."""
        for _ in range(ATTEMPTS):
            version = self.version()
            self.check_label_free(str(data["label"]), kind)
            if self.raw_put_if(item_id, data, version):
                return
        raise Conflict(f"the registry kept changing while creating {kind} {data['label']!r}; retry")

    def raw_put_if(self, item_id: str, data: dict[str, Any], version: int) -> bool:
        """Write only if no definition changed since ``version`` was read (compare-and-set), so
        checks made against the registry (slug free, no INCLUDE cycle) still hold when stored."""
        keys = [self.keys.registry_version, self.hash_key]
        return bool(self._put_if(keys=keys, args=[version, item_id, orjson.dumps(data)]))
