"""The intake: a request's entries appended to their shard streams all-or-nothing, once.

What it guarantees (docs/delivery.md, "Accepting"):

- **All or nothing.** On one Redis server a write is one Lua script over every shard the request
  touches (``workers/lua/intake.lua``): it checks every shard's backlog first and writes only
  then, and Redis refuses a script for lack of memory at its first write, never half-way. So a refusal (OOM,
  READONLY, a full backlog) leaves nothing stored, and an answer of "stored" means every entry is.
- **Once.** The script records its outcome under a random token before it returns; the Redis
  client's own retry after a dropped connection replays the same token and gets the first answer
  instead of appending again. Events with an id (``_id`` or ``messageId``) are also remembered for
  ``AUDIENCEHUB_DEDUP_WINDOW_S`` per user: a repeat within the window, from any request, is
  acknowledged as a duplicate and not appended.
- **On a Redis Cluster** a script may only touch one slot, and every shard is its own slot, so
  the same script runs once per shard, in shard order: each shard's part is all-or-nothing and
  idempotent, but a refusal from a later shard leaves the earlier shards' parts stored. The
  refusal says how many events were stored; with event ids a retry of the whole request is
  exactly-once.

The backlog limit is the deployment's ``AUDIENCEHUB_MAX_BACKLOG`` shared out over the shards: a
shard that holds its share of unapplied entries refuses more until its drainer catches up.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter, is_
from typing import Any, Literal, NamedTuple, Protocol

import redis

from workers.engine import Engine
from workers.lua import script
from workers.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE
from workers.pipeline.entries import Entry
from workers.redisconn import write_refusal
from workers.schedule.kicks import KICK_TTL_S

TOKEN_TTL_MS = 60_000
"""How long a write's outcome is kept for replays of a random token: longer than the Redis
client's own retries (about 10 s)."""
NAMED_TOKEN_TTL_MS = 1_200_000
"""For a token the caller names (the Celery task's id): longer than the broker's visibility
timeout (900 s, celeryconfig), so a task redelivered after its worker died replays its write."""
SEEN_BUCKETS = 4
"""The dedup window is kept as this many time buckets (sets) plus the current one, so an id is
remembered for at least the window and at most a quarter more."""
DIGEST_BYTES = 12
"""Bytes kept per remembered id: a BLAKE2b digest of (user id, event id). 96 bits make a false
"duplicate" vanishingly unlikely (about 1e-13 with 100 million ids in one window) and keep each
id at about 64 bytes of Redis memory, whatever the id's length."""
RETRY_AFTER_S = 5
"""What a refused caller is told to wait (HTTP Retry-After) before trying again."""

Refusal = Literal["backlog", "unavailable"]


class Row(Protocol):
    """What the intake reads of an entry to append: an IntakeItem, or a validated Event as it
    is, so a request's events need no copy as items."""

    @property
    def user_id(self) -> str: ...
    @property
    def entry(self) -> bytes: ...
    @property
    def event_id(self) -> str | None: ...


class IntakeItem(NamedTuple):
    """One entry to append, with the client's event id (``None`` when it gave none). A named
    tuple, immutable as a frozen dataclass but made in a third of the time: one per event."""

    user_id: str
    entry: bytes
    """The stream entry's bytes (``Entry.encode``), as validation made them."""
    event_id: str | None = None

    @classmethod
    def of(cls, entry: Entry, event_id: str | None = None) -> IntakeItem:
        return cls(entry.user_id, entry.encode(), event_id)


@dataclass(frozen=True, slots=True)
class Stored:
    stored: int
    duplicates: int
    counted: bool = field(default=False, compare=False)
    """The script added these to the metrics hash itself (one Redis server, not a replay)."""


@dataclass(frozen=True, slots=True)
class IntakeCall:
    """One call of ``intake.lua``: its keys and arguments, and the shards they name, in order."""

    keys: list[str]
    args: list[str | bytes | int]
    shards: list[int]
    one_call: bool
    """It also sets the drain kick flags and counts the events (one Redis server)."""


class IngestRefused(Exception):
    """Nothing of this write was stored (on a cluster: nothing after ``stored`` events)."""

    def __init__(self, kind: Refusal, reason: str, stored: int = 0, duplicates: int = 0) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.stored = stored
        self.duplicates = duplicates
        self.retry_after_s = RETRY_AFTER_S


def id_digest(user_id: str, event_id: str) -> bytes:
    """What is remembered of an event id: fixed size, scoped to its user."""
    raw = f"{user_id}\x00{event_id}".encode()
    return hashlib.blake2b(raw, digest_size=DIGEST_BYTES).digest()


_entry = attrgetter("entry")
_event_id = attrgetter("event_id")


class Intake:
    def __init__(self, engine: Engine) -> None:
        self.e = engine
        self._script = script(engine.r, "intake")
        k, shards = engine.keys, engine.cfg.shards
        self._events = [k.events(shard) for shard in range(shards)]
        lead = engine.drain_groups.lead
        self._kicks = [k.drain_kick(lead(shard)) for shard in range(shards)]
        """Each shard's keys (its kick flag is its drain group's), made once, not per request."""

    def shard_limit(self) -> int:
        """Each shard's share of ``AUDIENCEHUB_MAX_BACKLOG`` (at least 1)."""
        cfg = self.e.cfg
        return max(1, -(-cfg.max_backlog // cfg.shards))

    def append(self, items: Sequence[Row], now_ms: int, token: str | None = None) -> Stored:
        """Append ``items`` atomically (per shard on a cluster); raise IngestRefused if refused.

        A caller that may repeat the same write (a Celery task after a refusal or a redelivery)
        names it with ``token``: a repeat then replays what was stored instead of storing again.
        """
        if not items:
            return Stored(0, 0)
        if not self.e.cfg.redis_cluster:
            # One call: the script also sets the shards' drain kick flags and counts the events.
            call = self.call(items, now_ms, token)
            result, fresh = self.outcome(call, self._answer(call), Stored(0, 0))
            if result.counted:
                self.e.kicker.send_drains(fresh)
                return result
            self.e.kicker.drains(call.shards)
            return result
        groups = self._groups(items)
        ttl, token = self._token(token)
        result = Stored(0, 0)
        for shard in sorted(groups):
            part = self._call(token, ttl, [shard], groups, now_ms, one_call=False)
            result, _ = self.outcome(part, self._answer(part), result)
        self.e.kicker.drains(sorted(groups))
        return result

    def call(self, items: Sequence[Row], now_ms: int, token: str | None = None) -> IntakeCall:
        """The one script call that stores ``items`` on one Redis server, kicks and counts too
        (what ``append`` sends; ``workers/pipeline/group_commit.py`` sends it without a thread)."""
        groups = self._groups(items)
        ttl, token = self._token(token)
        return self._call(token, ttl, sorted(groups), groups, now_ms, one_call=True)

    def outcome(self, call: IntakeCall, answer: Any, done: Stored) -> tuple[Stored, list[int]]:
        """What the script's ``answer`` to ``call`` means, added to ``done`` (the shards stored
        before, on a cluster), with the shards whose kick flag was free; raises IngestRefused
        when the answer is a refusal (the backlog, or a Redis error that refuses writes)."""
        if isinstance(answer, BaseException):
            if not isinstance(answer, redis.RedisError):
                raise answer
            reason = write_refusal(answer)
            if reason is None:
                raise answer
            raise IngestRefused("unavailable", reason, done.stored, done.duplicates) from None
        status = int(answer[0])
        if status == 0:
            shard = call.shards[int(answer[1]) - 1]
            raise IngestRefused(
                "backlog",
                f"shard {shard} holds {int(answer[2]):,} events not yet applied (its share of "
                f"AUDIENCEHUB_MAX_BACKLOG={self.e.cfg.max_backlog:,}); the workers are behind",
                done.stored,
                done.duplicates,
            )
        if status == 2:  # a replay: the first attempt's outcome (kicked and counted again)
            stored, duplicates = (int(x) for x in answer[1].split())
            return Stored(done.stored + stored, done.duplicates + duplicates), []
        stored, duplicates = int(answer[1]), int(answer[2])
        fresh = [call.shards[int(g) - 1] for g in answer[3:]]
        return Stored(done.stored + stored, done.duplicates + duplicates, call.one_call), fresh

    def _answer(self, call: IntakeCall) -> Any:
        """The script's answer, or the Redis error that refused it."""
        try:
            return self._script(keys=call.keys, args=call.args)
        except redis.RedisError as exc:
            return exc

    def _groups(self, items: Sequence[Row]) -> dict[int, list[Row]]:
        """The items by shard (``shard_of``, inlined: once per event), in their order."""
        groups: dict[int, list[Row]] = {}
        shards = self.e.cfg.shards
        crc32 = zlib.crc32
        for item in items:
            shard = crc32(item.user_id.encode("utf-8")) % shards
            group = groups.get(shard)
            if group is None:
                groups[shard] = [item]
            else:
                group.append(item)
        return groups

    @staticmethod
    def _token(token: str | None) -> tuple[int, str]:
        ttl = TOKEN_TTL_MS if token is None else NAMED_TOKEN_TTL_MS
        return ttl, token or secrets.token_hex(12)

    def _call(
        self,
        token: str,
        ttl_ms: int,
        shards: list[int],
        groups: dict[int, list[Row]],
        now_ms: int,
        one_call: bool,
    ) -> IntakeCall:
        """The script's keys and arguments; with ``one_call`` it also kicks and counts (the
        shards it finds with a free kick flag come back beside what was stored)."""
        keys, args = self._build(token, ttl_ms, shards, groups, now_ms)
        if one_call:
            keys += [self._kicks[shard] for shard in shards]
            keys.append(self.e.keys.metrics)
            args += (KICK_TTL_S, EVENTS_ACCEPTED, EVENTS_DUPLICATE)
        return IntakeCall(keys, args, shards, one_call)

    def _build(
        self,
        token: str,
        ttl_ms: int,
        shards: list[int],
        groups: dict[int, list[Row]],
        now_ms: int,
    ) -> tuple[list[str], list[str | bytes | int]]:
        k = self.e.keys
        window_ms = self.e.cfg.dedup_window_s * 1000
        bucket_ms = max(1, window_ms // SEEN_BUCKETS)
        current = now_ms // bucket_ms
        keys: list[str] = [k.intake_token(shards[0], token)]
        args: list[str | bytes | int] = [ttl_ms, self.shard_limit(), window_ms + 2 * bucket_ms]
        args.append(len(shards))
        events = self._events
        ids = map(_event_id, chain.from_iterable(groups.values()))
        if window_ms <= 0 or all(map(is_, ids, repeat(None))):
            for shard in shards:  # no ids to remember: no seen buckets, each entry alone
                items = groups[shard]
                keys.append(events[shard])
                args += (0, len(items))
                args += map(_entry, items)
            return keys, args
        for shard in shards:
            items = groups[shard]
            dedup = any(item.event_id is not None for item in items)
            keys.append(events[shard])
            if not dedup:
                args += (0, len(items))
                args += [item.entry for item in items]
                continue
            buckets = [current - b for b in range(SEEN_BUCKETS + 1)]
            keys += [k.seen_ids(shard, b) for b in buckets]
            args += (len(buckets), len(items))
            for item in items:
                event_id = item.event_id
                digest = b"" if event_id is None else id_digest(item.user_id, event_id)
                args += (digest, item.entry)
        return keys, args
