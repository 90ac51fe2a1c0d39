"""Which shards one drain task works: a group of neighbouring shards under one kick flag.

A drain task has a fixed cost (Celery's dispatch, about 1.6 ms of worker CPU, and the round
trips that take and let go of a lease), paid per task whatever it drains. One task per shard
pays it once per shard per turn, so at moderate rates many shards mean many small tasks, and a
shard waits behind every other shard's task before its own. A task per group of shards pays it
once per group, and works the group's shards in turns, one batch each, under each shard's own
lease. Shards stay the unit of data (a shard is one hash slot, and its commit is one script), so
the shard count can grow for Redis Cluster without making the tasks smaller.

A group is ``size`` consecutive shards; its lead (the lowest) names it: its kick flag is the
lead shard's, and the task's argument is the lead. Every process must use the same size (like
the shard count): a mismatch costs a shard's drain until beat's sweep, never data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DrainGroups:
    shards: int
    size: int

    def lead(self, shard: int) -> int:
        """The shard that names ``shard``'s group (its kick flag, its task's argument)."""
        return shard - shard % self.size

    def members(self, shard: int) -> range:
        """The shards of ``shard``'s group, in order."""
        lead = self.lead(shard)
        return range(lead, min(lead + self.size, self.shards))

    def leads(self, shards: Iterable[int]) -> list[int]:
        """The leads of the groups holding ``shards``, sorted."""
        return sorted({self.lead(s) for s in shards})
