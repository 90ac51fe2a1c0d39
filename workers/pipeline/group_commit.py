"""Group commit: the intake calls of one process's concurrent requests go to Redis together.

An API process answers many requests at once on one event loop. Each request's events are still
one ``intake.lua`` call of their own, with its own token, all-or-nothing and with its own refusal
(workers/pipeline/intake.py); but the calls that wait while Redis answers the previous group go
out as one pipeline: one write and one read for all of them, and no thread hop. A request is
answered only once its own call's answer is back, so "accepted" still means durable.

For one Redis server only: on a Redis Cluster the intake is a call per shard, sent by the sync
client (``Ingestor``) on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, cast

import redis
from redis.asyncio.connection import AbstractConnection as AsyncConnection
from redis.exceptions import NoScriptError, ResponseError

from workers.engine import Engine
from workers.lua import source
from workers.pipeline.entries import DATA, Kind
from workers.pipeline.ingest import Ingestor, IngestResult, Item
from workers.pipeline.intake import IntakeCall, Stored
from workers.redisconn import AsyncRedis
from workers.schedule.clock import now_ns_async
from workers.timefmt import NS_PER_MS

MAX_GROUP = 64
"""Calls in one pipeline at most; more wait for the next (Redis runs them one by one anyway)."""
MAX_GROUP_BYTES = 8 * 1024 * 1024
"""Stream entry bytes in one pipeline at most (a call bigger than that goes alone): a group of
large batches is not one huge write for Redis to read while everything else waits."""


class GroupCommit:
    """``Ingestor.ingest`` for an event loop: validation as there, the write in a group."""

    def __init__(self, engine: Engine, client: AsyncRedis, pool: Executor) -> None:
        self.e = engine
        self.r = client
        self.ingestor = Ingestor(engine)
        self._pool = pool
        """For what would block the loop: queuing a drain (a Celery send), a big body's checks."""
        self._sha = hashlib.sha1(source("intake").encode()).hexdigest()
        self._waiting: list[tuple[IntakeCall, int, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        """The connection groups are sent on, taken from the client's pool once and kept: one
        group is in flight at a time (one sender), and taking and giving it back every group
        cost more than its own write. A dropped one reconnects on its next use; closing the
        client closes it with the pool."""
        self.groups_sent = 0
        """Pipelines sent so far: fewer than the requests they carried when requests overlap."""

    async def ingest(
        self, read: Callable[[], Iterable[Item]], kind: Kind = DATA, on_thread: bool = False
    ) -> IngestResult:
        """Validate every item ``read()`` gives, then store the valid ones in one all-or-nothing
        write; raises as ``Ingestor.ingest`` does (``IngestRefused``, ``TooManyEvents``), nothing
        stored. ``on_thread``: read, validate and build the call on the pool, for a body big
        enough to hold the loop (and every other request, and /healthz) for milliseconds."""
        now = await now_ns_async(self.e.clock, self.r)

        def prepare() -> tuple[IngestResult, int, IntakeCall | None, int]:
            """The result so far, the valid events' count, their script call and its size."""
            result, valid = self.ingestor.check(read(), now, kind)
            if not valid:
                return result, 0, None, 0
            size = sum([len(ev.entry) for ev in valid])
            return result, len(valid), self.ingestor.intake.call(valid, now // NS_PER_MS), size

        if on_thread:
            ctx = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            result, accepted, call, size = await loop.run_in_executor(self._pool, ctx.run, prepare)
        else:
            result, accepted, call, size = prepare()
        if result.errors:
            await self._count(lambda pipe: self.ingestor.rejected_tallies(result, pipe))
        if call is not None:
            stored = await self._commit(call, size)
            result.accepted = accepted
            result.duplicates = stored.duplicates
        return result

    async def _commit(self, call: IntakeCall, size: int) -> Stored:
        """``Intake.append``'s one call on one Redis server, sent in the next group."""
        intake = self.ingestor.intake
        stored, fresh = intake.outcome(call, await self._send(call, size), Stored(0, 0))
        loop = asyncio.get_running_loop()
        if not stored.counted:  # a replay of a call whose answer was lost: count and kick again
            await self._count(lambda pipe: self.ingestor.stored_tallies(stored, pipe))
            await loop.run_in_executor(self._pool, self.e.kicker.drains, call.shards)
        elif fresh:
            await loop.run_in_executor(self._pool, self.e.kicker.send_drains, fresh)
        return stored

    async def _send(self, call: IntakeCall, size: int) -> Any:
        """The script's answer to ``call`` (``size`` bytes of entries), or the Redis error that
        refused it."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((call, size, future))
        if self._sender is None:
            # Starts on the loop's next turn: the requests read in this one join the group.
            self._sender = asyncio.create_task(self._send_waiting())
        return await future

    async def _send_waiting(self) -> None:
        """Send what waits, a group at a time, until nothing waits."""
        group: list[tuple[IntakeCall, int, asyncio.Future[Any]]] = []
        try:
            while self._waiting:
                group = self._next_group()
                try:
                    answers = await self._pipeline([call for call, _, _ in group])
                except Exception as exc:  # the connection, after the client's retries; a bug
                    answers = [exc] * len(group)  # each caller raises it (Intake.outcome)
                for (_, _, future), answer in zip(group, answers, strict=True):
                    if not future.done():  # its request may have gone (client disconnected)
                        future.set_result(answer)
                group = []
        except BaseException:  # cancelled (shutdown): no caller waits forever
            for _, _, future in (*group, *self._waiting):
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._sender = None

    def _next_group(self) -> list[tuple[IntakeCall, int, asyncio.Future[Any]]]:
        """The longest run of waiting calls within MAX_GROUP and MAX_GROUP_BYTES (at least one)."""
        taken, total = 0, 0
        for _, size, _ in self._waiting[:MAX_GROUP]:
            if taken and total + size > MAX_GROUP_BYTES:
                break
            taken += 1
            total += size
        group = self._waiting[:taken]
        del self._waiting[:taken]
        return group

    async def _pipeline(self, calls: list[IntakeCall]) -> list[Any]:
        answers = await self._evalsha(calls)
        missing = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if missing:  # Redis restarted or flushed its scripts: those calls did not run
            await self.r.script_load(source("intake"))
            again = await self._evalsha([calls[i] for i in missing])
            for i, answer in zip(missing, again, strict=True):
                answers[i] = answer
        return answers

    async def _evalsha(self, calls: list[IntakeCall]) -> list[Any]:
        """Each call's answer, or the Redis error it got, in order: one write and the reads on
        the group commit's connection. What the client's pipeline does, without the per-command
        bookkeeping it spent a tenth of a request's CPU on (option dicts, fieldset preflight,
        duration records); its retry is the same: the connection's own, all of it sent again
        after a dropped connection (each call's token makes a repeat replay its first answer)."""
        self.groups_sent += 1
        sha = self._sha
        commands = [("EVALSHA", sha, len(call.keys), *call.keys, *call.args) for call in calls]
        conn = self._conn
        if conn is None:  # the first group: a connection of the pool's, kept (see __init__)
            conn = self._conn = await self.r.connection_pool.get_connection()  # type: ignore[no-untyped-call]

        async def exchange() -> list[Any]:
            await conn.send_packed_command(conn.pack_commands(commands))
            answers: list[Any] = []
            for _ in commands:  # every answer is read, errors too: the socket stays in step
                try:
                    answers.append(await conn.read_response())
                except ResponseError as exc:
                    answers.append(exc)
            return answers

        async def dropped(_: Exception) -> None:
            await conn.disconnect()

        return cast(list[Any], await conn.retry.call_with_retry(exchange, dropped))

    async def _count(self, queue: Callable[[Any], None]) -> None:
        """Add counters to the metrics hash; a counter is not worth failing the request."""
        pipe = self.r.pipeline(transaction=False)
        queue(pipe)
        with contextlib.suppress(redis.RedisError):
            await pipe.execute()
