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
from collections.abc import Sequence
from functools import lru_cache

__all__ = [
    "MAX_PARTITION_KEY",
    "hash_code",
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
