"""Authorizations: an Event Hub connection string, encrypted at rest and never shown again."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from workers.audiences.registry_store import ATTEMPTS, Conflict, DefinitionStore, NotFound, new_id
from workers.config import Settings
from workers.delivery.eventhub.connstr import (
    ConnectionString,
    ConnectionStringError,
    parse_connection_string,
)
from workers.jobs.secrets import UNREADABLE, SecretUnreadable, secret_box
from workers.keys import Keys
from workers.redisconn import Redis

MAX_PARTITIONS = 2048
"""Event Hubs allows up to 1024 partitions per hub (Dedicated); twice that is a typo guard."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """What may be shown of an authorization: where it points, never its key."""

    id: str
    label: str
    namespace: str
    hub: str
    key_name: str
    emulator: bool
    created: int
    health: str = "unknown"
    partitions: int | None = None
    """Partition count set by the operator (``auth create --partitions N``), for hubs whose
    management call cannot be made; None: learned from the hub."""

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "namespace": self.namespace,
            "hub": self.hub,
            "key_name": self.key_name,
            "emulator": self.emulator,
            "health": self.health,
            "partitions": self.partitions,
        }


def _from_raw(d: dict[str, Any]) -> Authorization:
    return Authorization(
        id=d["id"],
        label=d["label"],
        namespace=d["namespace"],
        hub=d["hub"],
        key_name=d["key_name"],
        emulator=bool(d["emulator"]),
        created=int(d["created"]),
        health=d.get("health", "unknown"),
        partitions=d.get("partitions"),
    )


class AuthStore(DefinitionStore):
    def __init__(self, r: Redis, keys: Keys, cfg: Settings) -> None:
        super().__init__(r, keys, keys.auths)
        self._cfg = cfg

    def create(
        self,
        label: str,
        connection_string: str,
        hub: str | None = None,
        partitions: int | None = None,
    ) -> Authorization:
        conn = self._allowed(parse_connection_string(connection_string, hub))
        if partitions is not None and not 1 <= partitions <= MAX_PARTITIONS:
            raise Conflict(f"partitions must be between 1 and {MAX_PARTITIONS}")
        sealed = secret_box(self._cfg).seal(conn.text()).decode("ascii")
        auth = Authorization(
            new_id(),
            label,
            conn.namespace,
            conn.hub,
            conn.key_name,
            conn.emulator,
            time.time_ns(),
            partitions=partitions,
        )
        data = {**auth.public(), "created": auth.created, "sealed": sealed}
        self.put_new_labelled(auth.id, data, "authorization")
        return auth

    def get(self, id_or_label: str) -> Authorization:
        d = self.raw_get(id_or_label)
        if d is None:
            d = self.by_label(id_or_label, "authorization")
        if d is None:
            raise NotFound(f"no authorization with id or label {id_or_label!r}")
        return _from_raw(d)

    def all(self) -> list[Authorization]:
        return sorted((_from_raw(d) for d in self.raw_all()), key=lambda a: a.label)

    def connection(self, auth_id: str) -> ConnectionString:
        """Decrypt the connection string; call only where it is used to send."""
        d = self.raw_get(auth_id)
        if d is None:
            raise NotFound(f"no authorization with id {auth_id!r}")
        try:
            text = secret_box(self._cfg).open(d["sealed"].encode("ascii"))
        except SecretUnreadable:
            raise SecretUnreadable(
                f"authorization {d['label']!r} ({auth_id}) cannot be decrypted: {UNREADABLE}"
            ) from None
        return self._allowed(parse_connection_string(text))

    def _allowed(self, conn: ConnectionString) -> ConnectionString:
        if conn.emulator and not self._cfg.emulator_allowed:
            raise ConnectionStringError(
                "UseDevelopmentEmulator=true (plain http to any host) is accepted only in demo "
                "or test mode; an operator can allow it with AUDIENCEHUB_ALLOW_EMULATOR=1"
            )
        return conn

    def reseal_all(self) -> tuple[list[str], list[str]]:
        """Seal every stored secret again with the first configured key (``secret rotate``).

        Returns the ids re-sealed and the ids no configured key opens (left as they are). Each
        authorization is rewritten by a compare-and-set, so a concurrent change is not lost.
        """
        box = secret_box(self._cfg)
        done: list[str] = []
        unreadable: list[str] = []
        for d in self.raw_all():
            for _ in range(ATTEMPTS):
                version = self.version()
                current = self.raw_get(d["id"])
                if current is None:
                    break
                try:
                    sealed = box.reseal(current["sealed"].encode("ascii")).decode("ascii")
                except SecretUnreadable:
                    unreadable.append(d["id"])
                    break
                if self.raw_put_if(d["id"], {**current, "sealed": sealed}, version):
                    done.append(d["id"])
                    break
        return done, unreadable

    def delete(self, auth_id: str, jobs_using: list[str]) -> None:
        """Remove an authorization; refused while a job that is not stopped uses it."""
        if jobs_using:
            raise Conflict(
                f"authorization {auth_id} is used by job(s) {', '.join(jobs_using)}; "
                "stop them first (audiencehub job stop JOB)"
            )
        pipe = self.r.pipeline(transaction=True)
        pipe.hdel(self.hash_key, auth_id)
        pipe.incr(self.keys.registry_version)
        pipe.execute()
        self.r.delete(self.keys.auth_partitions(auth_id))

    def set_health(self, auth_id: str, health: str) -> None:
        d = self.raw_get(auth_id)
        if d is None:
            raise NotFound(f"no authorization with id {auth_id!r}")
        d["health"] = health
        self.raw_put(auth_id, d)
