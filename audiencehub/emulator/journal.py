"""The stand-in's events on disk (``--data DIR``), so a restarted stand-in still has them.

Layout, one directory per hub::

    DIR/lock                           held (flock) while a stand-in uses DIR
    DIR/hubs/<hub, lower-cased>/hub.json     {"name", "partition_ids", "created_at_ns"}
    DIR/hubs/<hub>/<first seq, 20 digits>.log  segments of records, oldest first

A record is ``>II`` (payload length, CRC-32 of the payload) then the payload, one AMQP-encoded
list (the stand-in's own codec, so property values keep their AMQP types):

- ``[0, [[sequence, offset, row…], …]]``: the events of one append, with their partition numbers;
- ``[1, seq, {partition: [next sequence, next offset, last offset, last time]}]``: the counters
  when the segment began. Each segment starts with one, so numbering survives older segments
  being deleted;
- ``[2, seq, {…}]``: the same after a reset, which opens a fresh segment with it and then deletes
  the older ones (a reset record met while loading also discards whatever came before it).

Every append is written (and flushed to the OS) before the stand-in acknowledges it, so killing
the process loses nothing it accepted. There is no fsync: a machine crash can lose the last
writes. A torn last record (the process died mid-write) is cut off when the directory is loaded.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from audiencehub.emulator.amqp import (
    NULL,
    DecodeError,
    decode_value,
    e_bin,
    e_map,
    e_str,
    encode_value,
)
from audiencehub.emulator.records import PROPS_AT, Row, record_row

__all__ = ["Journal", "JournalError"]

log = logging.getLogger("audiencehub.emulator.journal")

SEGMENT_BYTES = 64 * 1024 * 1024
_HEAD = struct.Struct(">II")
_EVENTS, _STATE, _RESET = 0, 1, 2

PartitionState = dict[str, list[int]]


class JournalError(RuntimeError):
    """The data directory cannot be used (locked by another stand-in, unreadable, …)."""


class _HubFiles:
    """One hub's directory: its segments and the one being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.segments: list[tuple[Path, int]] = []  # (file, last seq written to it)
        self.current: IO[bytes] | None = None
        self.size = 0


class Journal:
    """Append-only segment files per hub; see the module docstring for the format."""

    def __init__(self, root: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.root = root
        self.segment_bytes = segment_bytes
        try:
            (root / "hubs").mkdir(parents=True, exist_ok=True)
            self._lock_file = open(root / "lock", "a+b")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise JournalError(f"cannot use data directory {root}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise JournalError(f"data directory {root} is in use by another hub stand-in") from None
        self._hubs: dict[str, _HubFiles] = {}
        # The store's counters for a hub, read when a segment starts (under the store's lock).
        self.snapshot: Callable[[str], tuple[int, PartitionState]] = lambda hub: (0, {})

    # ---- loading ----------------------------------------------------------------------------

    def hubs(self) -> list[tuple[str, list[str], int]]:
        """(name, partition ids, created at) of every hub the directory holds."""
        out = []
        for meta in sorted((self.root / "hubs").glob("*/hub.json")):
            try:
                data = json.loads(meta.read_text())
                ids = [str(p) for p in data["partition_ids"]]
                out.append((str(data["name"]), ids, int(data["created_at_ns"])))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise JournalError(f"cannot read {meta}: {exc}") from None
        return out

    def replay(self, hub: str) -> tuple[tuple[int, PartitionState], list[tuple[int, int, Row]]]:
        """The hub's counters at the start of what is kept, and every kept event in order."""
        files = self._files(hub)
        state: tuple[int, PartitionState] | None = None
        rows: list[tuple[int, int, Row]] = []
        for path in sorted(files.path.glob("*.log")):
            last = 0
            for record in self._records(path):
                if record[0] in (_STATE, _RESET):
                    if record[0] == _RESET:
                        rows.clear()
                        state = None
                    if state is None:  # the oldest counters kept are the baseline
                        parts = {str(k): [int(x) for x in v] for k, v in record[2].items()}
                        state = (int(record[1]), parts)
                    last = max(last, int(record[1]))
                elif record[0] == _EVENTS:
                    for sequence, offset, raw in record[1]:
                        row = record_row(raw)
                        rows.append((int(sequence), int(offset), row))
                        last = row[0]
            files.segments.append((path, last))
        return state or (0, {}), rows

    def _records(self, path: Path) -> Iterator[list[Any]]:
        """The whole records of a segment; a torn or corrupt tail is cut off the file."""
        data = path.read_bytes()
        pos = 0
        good = 0
        while pos + _HEAD.size <= len(data):
            size, crc = _HEAD.unpack_from(data, pos)
            start = pos + _HEAD.size
            payload = data[start : start + size]
            if len(payload) < size or zlib.crc32(payload) != crc:
                break
            try:
                record, _ = decode_value(payload)
            except DecodeError:
                break
            pos = good = start + size
            yield record
        if good < len(data):
            log.warning("cut %d torn byte(s) off the end of %s", len(data) - good, path)
            with open(path, "r+b") as fh:
                fh.truncate(good)

    # ---- writing (called by the store under its lock) -----------------------------------------

    def hub_created(
        self, name: str, partition_ids: Sequence[str], created_at: int, replace: bool = False
    ) -> None:
        """Record a hub's shape (``replace``: it grew)."""
        files = self._files(name)
        meta = files.path / "hub.json"
        if replace or not meta.exists():
            tmp = meta.with_suffix(".tmp")
            meta_doc = {
                "name": name,
                "partition_ids": list(partition_ids),
                "created_at_ns": created_at,
            }
            tmp.write_text(json.dumps(meta_doc))
            os.replace(tmp, meta)

    def events(self, hub: str, written: Sequence[tuple[int, int, Row]]) -> None:
        files = self._files(hub)
        payload = _e_events(written)
        if files.current is None or files.size >= self.segment_bytes:
            self._roll(files, written[0][2][0], _STATE, *self.snapshot(hub))
        self._write(files, payload)
        path, _ = files.segments[-1]
        files.segments[-1] = (path, written[-1][2][0])

    def reset(self, hub: str, seq: int, partitions: PartitionState) -> None:
        """Everything of the hub so far is forgotten; numbering goes on from ``partitions``."""
        files = self._files(hub)
        old = [path for path, _ in files.segments]
        self._roll(files, seq + 1, _RESET, seq, partitions)
        for path in old:
            path.unlink(missing_ok=True)
        files.segments = files.segments[-1:]

    def expired(self, hub: str, first_kept: int) -> None:
        """Delete segments whose every event is older than ``first_kept`` (never the current)."""
        files = self._files(hub)
        while len(files.segments) > 1 and files.segments[0][1] < first_kept:
            path, _ = files.segments.pop(0)
            path.unlink(missing_ok=True)

    def close(self) -> None:
        for files in self._hubs.values():
            if files.current is not None:
                files.current.close()
                files.current = None
        self._lock_file.close()

    # ---- helpers ----------------------------------------------------------------------------

    def _files(self, hub: str) -> _HubFiles:
        key = hub.lower()
        files = self._hubs.get(key)
        if files is None:
            path = self.root / "hubs" / key
            path.mkdir(parents=True, exist_ok=True)
            files = self._hubs[key] = _HubFiles(path)
        return files

    def _roll(
        self, files: _HubFiles, first_seq: int, kind: int, seq: int, partitions: PartitionState
    ) -> None:
        """Start a new segment, opening with the hub's counters."""
        if files.current is not None:
            files.current.close()
        path = files.path / f"{first_seq:020d}.log"
        files.current = open(path, "ab")  # noqa: SIM115 - kept open for appends
        files.size = 0
        files.segments.append((path, first_seq - 1))
        self._write(files, encode_value([kind, seq, partitions]))

    @staticmethod
    def _write(files: _HubFiles, payload: bytes) -> None:
        assert files.current is not None
        files.current.write(_HEAD.pack(len(payload), zlib.crc32(payload)) + payload)
        files.current.flush()
        files.size += _HEAD.size + len(payload)


# ---- encoding an append fast (the generic encoder costs ~16 µs an event; this ~5) ---------------

_LONG = struct.Struct(">Bq")  # long, always 8 bytes: no branching on the value
_LIST32 = struct.Struct(">BII")


def _list32(body: bytes, count: int) -> bytes:
    return _LIST32.pack(0xD0, len(body) + 4, count) + body


def _e_events(written: Sequence[tuple[int, int, Row]]) -> bytes:
    """``[0, [[sequence, offset, row…], …]]``, decoding to what :func:`encode_value` writes."""
    cache: dict[str, bytes] = {}
    long = _LONG.pack

    def short(text: str) -> bytes:  # hub, partition, face and property names repeat
        done = cache.get(text)
        if done is None:
            done = cache[text] = e_str(text)
        return done

    def props(names: tuple[Any, ...], values: tuple[Any, ...]) -> bytes:
        return e_map(
            [
                (short(k), e_str(v) if type(v) is str else encode_value(v))
                for k, v in zip(names, values, strict=True)
            ]
        )

    entries = []
    for sequence, offset, row in written:
        seq, hub, pid, key, body, users, brokers, when, face, request = row[:PROPS_AT]
        at = PROPS_AT + 2 * users  # the row's property names and values (records.py)
        user = props(row[PROPS_AT : PROPS_AT + users], row[PROPS_AT + users : at])
        broker = props(row[at : at + brokers], row[at + brokers : at + 2 * brokers])
        fields = b"".join(
            (
                long(0x81, seq),
                short(hub),
                short(pid),
                NULL if key is None else e_str(key),
                e_bin(body),
                user,
                broker,
                long(0x81, when),
                short(face),
                long(0x81, request),
            )
        )
        entries.append(_list32(long(0x81, sequence) + long(0x81, offset) + _list32(fields, 10), 3))
    return _list32(long(0x81, _EVENTS) + _list32(b"".join(entries), len(entries)), 2)
