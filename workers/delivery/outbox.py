"""The owner of a job's outboxes: one stream per (shard, job) of rendered trigger messages.

Drains and backfill pages append records inside their fenced scripts (``commit.lua``,
``backfill_page.lua``), which get the stream as a KEY and a record's field names as ARGV from
``RECORD_FIELDS``; everything else reads and writes an outbox through :class:`Outbox`.
Delivery removes records only after the hub accepted them (:meth:`Outbox.ack_through`,
:meth:`Outbox.remove`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from workers.keys import Keys
from workers.redisconn import next_stream_id, stream_rows

RECORD_FIELDS = ("u", "k", "b")
"""An outbox record's stream fields, in :class:`OutboxRecord`'s order: the one place they are
named. The scripts that append records get them as ARGV."""


class OutboxRecord(NamedTuple):
    """One message waiting for the hub: its user, its idempotency key and its rendered body.
    A tuple in RECORD_FIELDS order: the triple the scripts take. The drain's hot path builds
    plain triples in the same order rather than one object per message."""

    user: str
    key: str
    body: bytes

    def fields(self) -> dict[str, str | bytes]:
        return dict(zip(RECORD_FIELDS, self, strict=True))

    @classmethod
    def from_fields(cls, f: dict[bytes, bytes]) -> OutboxRecord:
        return cls(f[_U].decode(), f[_K].decode(), f[_B])


_U, _K, _B = (name.encode() for name in RECORD_FIELDS)


def packed_values(values: list[bytes]) -> list[bytes]:
    """Records' values (user id, idempotency key, body per record, in RECORD_FIELDS order) as
    ``backfill_page.lua`` takes them: their lengths (unsigned 32-bit little-endian) and the
    values end to end. Two arguments instead of three per record: the client packs every
    argument of a command one by one (about 0.2 us each), the bytes of one at memory speed.
    Nothing (no argument) for no records."""
    if not values:
        return []
    return [struct.pack(f"<{len(values)}I", *map(len, values)), b"".join(values)]


class Outbox:
    """One job's outbox in one shard. Methods take the client or a pipeline, so callers can
    batch several outboxes (and other structures) into one round trip."""

    __slots__ = ("key",)

    def __init__(self, keys: Keys, shard: int, job: str) -> None:
        self.key = keys.outbox(shard, job)

    def length(self, r: Any) -> Any:
        """XLEN: messages waiting."""
        return r.xlen(self.key)

    def head(self, r: Any) -> Any:
        """The oldest record, raw (see :func:`head_age_ms`)."""
        return r.xrange(self.key, count=1)

    def read(self, r: Any, count: int, after: str | None = None) -> Any:
        """The oldest ``count`` records (after the stream id ``after``), raw (see
        :func:`records`)."""
        return r.xrange(self.key, min="-" if after is None else f"({after}", count=count)

    def all(self, r: Any) -> Any:
        """Every record, raw; for inspection and tests."""
        return r.xrange(self.key)

    def append(self, r: Any, records: Iterable[OutboxRecord]) -> None:
        for record in records:
            r.xadd(self.key, record.fields())

    def ack_through(self, r: Any, entry_id: str) -> Any:
        """Remove every record up to and including ``entry_id`` (XTRIM MINID keeps ids >= it)."""
        return r.xtrim(self.key, minid=next_stream_id(entry_id), approximate=False)

    def remove(self, r: Any, ids: list[str]) -> Any:
        return r.xdel(self.key, *ids)


def records(raw: object) -> list[tuple[str, OutboxRecord]]:
    """(stream id, record) of an XRANGE answer."""
    return [(entry_id.decode(), OutboxRecord.from_fields(f)) for entry_id, f in stream_rows(raw)]


def record_values(raw: object) -> Iterator[tuple[str, str, str, bytes]]:
    """(stream id, user, key, body) of an XRANGE answer, without a record object per row: the
    deliverer's hot path, where one more object per message doubles the cost of a read."""
    u, k, b = _U, _K, _B
    for entry_id, f in stream_rows(raw):
        yield entry_id.decode(), f[u].decode(), f[k].decode(), f[b]


def head_time_ms(raw: object) -> int | None:
    """When the oldest record of an :meth:`Outbox.head` answer was written (ms), or None."""
    rows = stream_rows(raw)
    return int(rows[0][0].split(b"-")[0]) if rows else None
