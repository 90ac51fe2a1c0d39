"""Builds and runs the shard commit (``workers/lua/commit.lua``): one atomic, fenced,
single-slot script.

The fence is the shard version (the last committed stream id): a commit succeeds only if nobody
committed since this drainer read the shard, so a stale or duplicate drainer can never apply a
batch twice or overwrite newer profiles.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from redis.commands.core import Script
from redis.exceptions import NoScriptError

from workers.delivery.outbox import RECORD_FIELDS, Outbox
from workers.keys import Keys
from workers.lua import script
from workers.pipeline.member_index import MemberIndex
from workers.redisconn import Redis
from workers.schedule.due_index import BUCKET_MS, DueIndex


@dataclass
class ShardCommit:
    keys: Keys
    shard: int
    expected: str
    version: str
    trim_to: str = ""
    users: dict[str, bytes] = field(default_factory=dict)
    due: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    """user id -> (due ms before, due ms after); only users whose due time changed."""
    member_add: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    member_rem: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    outbox: dict[str, list[tuple[str, str, bytes]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """job id -> records, each (user id, idempotency key, body): an OutboxRecord's values in
    RECORD_FIELDS order (a plain tuple on the drain's hot path)."""
    set_aside: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    """Entries not applied: (stream entry id, reason, time ms, entry payload)."""

    def build(self) -> tuple[list[str], list[str | bytes | int]]:
        k, s = self.keys, self.shard
        due = DueIndex(k, s)
        keys: list[str] = [k.applied(s), k.events(s), k.users(s), due.key, due.count_key]
        keys += [k.drain_attempts(s), k.shard_dead(s)]
        args: list[str | bytes | int] = [self.expected, self.version, self.trim_to, BUCKET_MS]
        args += RECORD_FIELDS
        args.append(len(self.users))
        for uid, blob in self.users.items():
            args += (uid, blob)
        args.append(len(self.due))
        for uid, (old, new) in self.due.items():
            args += (uid, "" if old is None else old, "" if new is None else new)
        audiences = sorted(set(self.member_add) | set(self.member_rem))
        args.append(len(audiences))
        for aid in audiences:
            keys.append(MemberIndex(k, s, aid).key)
            args.append(len(keys))
            adds = self.member_add.get(aid, [])
            args.append(len(adds))
            for uid in adds:
                args += (0, uid)
            rems = self.member_rem.get(aid, [])
            args.append(len(rems))
            args += rems
        jobs = sorted(self.outbox)
        args.append(len(jobs))
        for job in jobs:
            keys.append(Outbox(k, s, job).key)
            args.append(len(keys))
            records = self.outbox[job]
            args.append(len(records))
            for record in records:
                args += record
        args.append(len(self.set_aside))
        for entry_id, reason, at_ms, payload in self.set_aside:
            args += (entry_id, reason, at_ms, payload)
        return keys, args


class Committer:
    def __init__(self, r: Redis) -> None:
        self._r = r
        self._script: Script = script(r, "commit")

    def run(self, commit: ShardCommit) -> bool:
        keys, args = commit.build()
        result = self._script(keys=keys, args=args)
        return bool(result == 1)

    def run_all(self, commits: list[ShardCommit]) -> list[bool]:
        """Each commit (each its own shard's atomic script) in one pipeline; whether each
        committed. A commit the server refused for not knowing the script (its first use, or
        after a restart) ran nothing and is sent again on its own, which loads it."""
        if len(commits) < 2:
            return [self.run(commit) for commit in commits]
        pipe = self._r.pipeline(transaction=False)
        built = [commit.build() for commit in commits]
        for keys, args in built:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        answers = pipe.execute(raise_on_error=False)
        done: list[bool] = []
        for (keys, args), answer in zip(built, answers, strict=True):
            if isinstance(answer, NoScriptError):
                answer = self._script(keys=keys, args=args)
            elif isinstance(answer, Exception):
                raise answer
            done.append(answer == 1)
        return done
