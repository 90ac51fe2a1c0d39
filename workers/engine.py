"""One object per process holding what every engine call needs, built after fork."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from workers.audiences.registry import RegistryCache
from workers.audiences.store import AudienceStore
from workers.config import Settings, settings
from workers.jobs.store import JobStore
from workers.keys import Keys
from workers.pipeline.drain_groups import DrainGroups
from workers.redisconn import Redis, check_shard_count, state_redis
from workers.schedule.clock import Clock, clock_for
from workers.schedule.kicks import Kicker, NoSender, TaskSender

if TYPE_CHECKING:
    from workers.jobs.auths import AuthStore


@dataclass
class Engine:
    cfg: Settings
    r: Redis
    keys: Keys
    clock: Clock
    kicker: Kicker
    registry: RegistryCache = field(init=False)

    def __post_init__(self) -> None:
        self.registry = RegistryCache(self.r, self.keys)

    @property
    def drain_groups(self) -> DrainGroups:
        return self.kicker.groups

    # The definition stores, one way in for every interface (API, UI, CLI) and engine module.
    @cached_property
    def audiences(self) -> AudienceStore:
        return AudienceStore(self.r, self.keys)

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.r, self.keys)

    @cached_property
    def auths(self) -> AuthStore:
        from workers.jobs.auths import AuthStore  # cryptography: only where secrets are used

        return AuthStore(self.r, self.keys, self.cfg)

    @classmethod
    def create(
        cls, sender: TaskSender | None = None, cfg: Settings | None = None, r: Redis | None = None
    ) -> Engine:
        cfg = cfg or settings()
        r = r if r is not None else state_redis(cfg)
        check_shard_count(r, cfg)
        keys = Keys(cfg.prefix)
        kicker = Kicker(
            r,
            keys,
            sender or NoSender(),
            DrainGroups(cfg.shards, cfg.shards_per_drain),
            cfg.drain_kick_interval_ms / 1000,
        )
        return cls(cfg, r, keys, clock_for(cfg, r), kicker)
