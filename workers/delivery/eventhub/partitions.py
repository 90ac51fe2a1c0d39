"""Which partition Event Hubs puts a partition key in, computed the way the service does.

Senders that group messages by partition (REST ``/partitions/{id}/messages``, one AMQP batch per
partition) keep the key-to-partition mapping a consumer would see from a plain partition-key send
only if they hash exactly like the service gateway: Jenkins' lookup3 over the key's UTF-8 bytes,
``(short)(c ^ b)``, then ``Math.Abs(hash % count)`` with C#'s truncating remainder.

That is what the .NET, Java and JavaScript SDKs carry ("a direct port of the Event Hubs service
code"). The Python SDK's buffered-mode resolver computes the same hash for ASCII keys but takes
Python's floor modulo (``abs(h % n)`` is never negative there), so for keys whose hash is negative
it picks a different partition (e.g. ``"7"`` on 4 partitions: service ``"3"``, Python SDK ``"1"``),
and it hashes code points instead of UTF-8 bytes for non-ASCII keys. We follow the service.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "MAX_PARTITION_KEY",
    "hash_code",
    "hash_codes",
    "key_length",
    "partition_for_key",
    "partition_index",
    "partition_key_for",
]

MAX_PARTITION_KEY = 128
"""The service's limit on a partition key, in characters (.NET's UTF-16 units)."""

_M = 0xFFFFFFFF
_WORDS = struct.Struct("<III")


_PAD = tuple(bytes(12 - n) for n in range(13))
_MIX_ROTATIONS = (4, 6, 8, 16, 19, 4)
_FINAL_ROTATIONS = (14, 11, 25, 16, 4, 14, 24)
"""lookup3's rotations, in order: ``_lookup3`` writes them out (once per key, for speed),
``_lookup3_lanes`` loops over them (once per round of many keys)."""


def _lookup3(data: bytes) -> tuple[int, int]:
    """Jenkins' hashlittle2 with both seeds 0: returns (c, b) as unsigned 32-bit ints.

    Once per message a deliverer sends and per event the stand-in stores, so it is written for
    speed: a rotation's bits above 32 are not masked where the masked subtraction right after
    drops them anyway.
    """
    m = _M
    size = len(data)
    a = b = c = (0xDEADBEEF + size) & m
    pos = 0
    while size > 12:
        w0, w1, w2 = _WORDS.unpack_from(data, pos)
        a = (a + w0) & m
        b = (b + w1) & m
        c = (c + w2) & m
        # mix(a, b, c)
        a = (a - c) & m
        a ^= ((c << 4) | (c >> 28)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 6) | (a >> 26)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 8) | (b >> 24)) & m
        b = (b + a) & m
        a = (a - c) & m
        a ^= ((c << 16) | (c >> 16)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 19) | (a >> 13)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 4) | (b >> 28)) & m
        b = (b + a) & m
        pos += 12
        size -= 12
    if size == 0:
        return c, b
    # The tail cases of lookup3 add partial little-endian words; zero padding adds the same.
    w0, w1, w2 = _WORDS.unpack(data[pos:] + _PAD[size])
    a = (a + w0) & m
    b = (b + w1) & m
    c = ((c + w2) & m) ^ b
    # final(a, b, c)
    c = (c - ((b << 14) | (b >> 18))) & m
    a ^= c
    a = (a - ((c << 11) | (c >> 21))) & m
    b ^= a
    b = (b - ((a << 25) | (a >> 7))) & m
    c ^= b
    c = (c - ((b << 16) | (b >> 16))) & m
    a ^= c
    a = (a - ((c << 4) | (c >> 28))) & m
    b ^= a
    b = (b - ((a << 14) | (a >> 18))) & m
    c ^= b
    c = (c - ((b << 24) | (b >> 8))) & m
    return c, b


@lru_cache(maxsize=65536)
def hash_code(key: str) -> int:
    """The service's signed 16-bit hash of a partition key (cached: user ids repeat)."""
    c, b = _lookup3(key.encode("utf-8"))
    h = (c ^ b) & 0xFFFF
    return h - 0x10000 if h & 0x8000 else h


BATCH_FROM = 32
"""Keys of one byte length from which :func:`hash_codes` hashes them side by side."""


def hash_codes(keys: Sequence[str]) -> list[int]:
    """:func:`hash_code` of each key, in order, for a deliverer's round of messages.

    Keys of a round are mostly distinct (an Existing Users backfill sends each user once, and
    the per-key cache then misses every time, a few microseconds of Python integer arithmetic a
    key). So keys of the same UTF-8 length, when there are many, are hashed together: each in a
    64-bit lane of one Python integer, lookup3's 32-bit steps done on all the lanes at once
    (:func:`_lookup3_lanes`). A few keys of a length, or a big-endian machine, use
    :func:`hash_code` one by one.
    """
    if len(keys) < BATCH_FROM or sys.byteorder != "little":
        return [hash_code(key) for key in keys]
    encoded = [key.encode("utf-8") for key in keys]
    by_length: dict[int, list[int]] = {}
    for index, data in enumerate(encoded):
        by_length.setdefault(len(data), []).append(index)
    out = [0] * len(keys)
    for size, indexes in by_length.items():
        if len(indexes) < BATCH_FROM or size == 0:
            for i in indexes:
                out[i] = hash_code(keys[i])
            continue
        for i, h in zip(indexes, _lookup3_lanes([encoded[i] for i in indexes], size), strict=True):
            out[i] = h
    return out


def _lookup3_lanes(keys: list[bytes], size: int) -> list[int]:
    """The signed 16-bit ``(c ^ b)`` of :func:`_lookup3` for keys all ``size`` (> 0) bytes long.

    Lane ``i`` (bits 64i .. 64i+63) of each integer holds key ``i``'s 32-bit value, always
    reduced below 2**32, so a sum fits its lane and nothing carries into the next; a difference
    is taken as ``x + (2**32 - y)``, which never borrows; the bits a rotation or a shift puts
    above bit 32 of a lane (or into the top of the lane below) are masked off. Every step is
    then one operation on all the keys.
    """
    count = len(keys)
    blocks = -(-size // 12)
    pad = bytes(blocks * 12 - size)
    words = array("I")
    words.frombytes(b"".join([k + pad for k in keys]) if pad else b"".join(keys))
    per_key = blocks * 3
    lane = array("I", bytes(8 * count))

    def word(w: int) -> int:
        lane[0::2] = words[w::per_key]
        return int.from_bytes(lane.tobytes(), "little")

    m = int.from_bytes(b"\xff\xff\xff\xff\0\0\0\0" * count, "little")
    top = int.from_bytes(b"\0\0\0\0\x01\0\0\0" * count, "little")  # 2**32 in every lane

    def sub(x: int, y: int) -> int:
        return (x + (top - y)) & m

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & m

    a = b = c = ((0xDEADBEEF + size) & _M) * (m // _M)  # the same start in every lane
    for block in range(blocks):
        a = (a + word(3 * block)) & m
        b = (b + word(3 * block + 1)) & m
        c = (c + word(3 * block + 2)) & m
        # mix(a, b, c) between blocks, final(a, b, c) after the last: each step is "x -= y,
        # x ^= rot(y, r), y += z" (mix) or "x ^= y, x -= rot(y, r)" (final) on the roles
        # (x, y, z) = (a, c, b), then the roles move on by one: (b, a, c), (c, b, a), ...
        if block < blocks - 1:
            for r in _MIX_ROTATIONS:
                a = sub(a, c) ^ rot(c, r)
                c = (c + b) & m
                a, b, c = b, c, a  # 6 steps: the roles are back where they started
        else:
            for r in _FINAL_ROTATIONS:
                c = sub(c ^ b, rot(b, r))
                a, b, c = b, c, a
            a, b, c = c, a, b  # 7 steps left the roles one on: put them back
    # The low 16 bits of each lane, read as a signed short: (short)(c ^ b).
    return memoryview((c ^ b).to_bytes(8 * count, "little")).cast("h")[::4].tolist()


def partition_index(key: str, count: int) -> int:
    """Index of the partition for ``key`` among ``count`` partitions (C#'s ``Math.Abs(h % n)``)."""
    if count <= 0:
        raise ValueError("an event hub has at least one partition")
    return abs(hash_code(key)) % count


def partition_for_key(key: str, partition_ids: Sequence[str]) -> str:
    """The partition id the service would choose for ``key`` (ids in the hub's own order)."""
    return partition_ids[partition_index(key, len(partition_ids))]


def key_length(key: str) -> int:
    """Length as the service counts it: UTF-16 code units (a character beyond the BMP is 2)."""
    return len(key.encode("utf-16-le")) // 2


def partition_key_for(user_id: str) -> str:
    """The partition key a user's messages carry: the user id, or a stable stand-in for it.

    User ids may be up to 256 characters; the hub refuses partition keys over 128. Such a user
    is not refused (its events were accepted and its membership is real): its key is the first
    64 characters, ``~``, and 32 hex digits of a BLAKE2b hash of the whole id. The same id
    always gives the same key (one partition, in order); the body carries the full user id.
    """
    if len(user_id) <= MAX_PARTITION_KEY // 2 or key_length(user_id) <= MAX_PARTITION_KEY:
        return user_id  # (at most 2 UTF-16 units per character: short ids need no counting)
    prefix = user_id[:64]
    while key_length(prefix) > 64:
        prefix = prefix[:-1]
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=16).hexdigest()
    return f"{prefix}~{digest}"
