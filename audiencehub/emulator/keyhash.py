"""The service's partition-key hash for a whole batch of keys at once, for the stand-in's intake.

:func:`key_codes` gives, for each key, ``abs(hash_code(key))`` (its partition among ``n`` is
``ids[code % n]``, as :func:`~workers.delivery.eventhub.partitions.partition_for_key` computes),
bit for bit the same as ``hash_code``: Jenkins' lookup3 over the key's UTF-8 bytes, ``(short)(c ^
b)``. The stand-in hashes every event it stores (to place it, or to count events sent to a
partition their key does not hash to), and a backfill sends every user once, so a per-key memo
does not help there; in Python, one key costs ~1.8 µs.

How: a key of at most 12 UTF-8 bytes (user ids usually are) is hashed by lookup3's final mix
alone, 30 32-bit operations. All such keys of a batch are packed into one big integer, a 96-bit
lane per key, and each operation runs on every lane at once (Python's big-integer arithmetic is
one C loop): values stay below 2**32 in their lane, additions stay below 2**33, a subtraction
adds 2**32 to each lane first so no lane borrows from the next, and a rotation's spill into the
neighbouring lanes lands above bit 32 and is masked off. Longer and empty keys go through
``hash_code`` one at a time.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from functools import lru_cache

from workers.delivery.eventhub.partitions import hash_code

__all__ = ["key_codes"]

_LANE = 12  # bytes per key: lookup3's three 32-bit words
_PAD = tuple(bytes(_LANE - n) for n in range(_LANE + 1))
# lookup3's initial a = b = c for an n-byte key (seeds 0), as a lane.
_INIT = tuple(((0xDEADBEEF + n) & 0xFFFFFFFF).to_bytes(4, "little") + bytes(8) for n in range(13))
_ABS = tuple(abs(h - 0x10000 if h & 0x8000 else h) for h in range(0x10000))
MIN_BATCH = 8
"""Fewer keys than this are hashed one by one (the packing costs more than it saves)."""


@lru_cache(maxsize=64)
def _lane_masks(n: int) -> tuple[int, int]:
    """(the low 32 bits of each of ``n`` lanes, 2**32 in each lane)."""
    low = int.from_bytes(b"\xff\xff\xff\xff" + bytes(8), "little")
    high = 1 << 32
    mask = bits = 0
    for i in range(n):
        mask |= low << (96 * i)
        bits |= high << (96 * i)
    return mask, bits


def _masks(n: int) -> tuple[int, int]:
    # Sizes are rounded up to a multiple of 64 lanes so a few masks serve every batch size.
    size = -(-n // 64) * 64
    mask, bits = _lane_masks(size)
    if size == n:
        return mask, bits
    keep = (1 << (96 * n)) - 1
    return mask & keep, bits & keep


def _final(packed: bytes, init: bytes, n: int) -> bytes:
    """lookup3's tail and final mix on ``n`` packed keys; each lane's low 16 bits are c ^ b."""
    m, h = _masks(n)
    x = int.from_bytes(packed, "little")
    start = int.from_bytes(init, "little")
    a = ((x & m) + start) & m
    b = (((x >> 32) & m) + start) & m
    c = ((((x >> 64) & m) + start) & m) ^ b
    # final(a, b, c): x - rot(y, k) per lane is (x + 2**32 - rot) & m.
    c = (c + h - (((b << 14) | (b >> 18)) & m)) & m
    a ^= c
    a = (a + h - (((c << 11) | (c >> 21)) & m)) & m
    b ^= a
    b = (b + h - (((a << 25) | (a >> 7)) & m)) & m
    c ^= b
    c = (c + h - (((b << 16) | (b >> 16)) & m)) & m
    a ^= c
    a = (a + h - (((c << 4) | (c >> 28)) & m)) & m
    b ^= a
    b = (b + h - (((a << 14) | (a >> 18)) & m)) & m
    c ^= b
    c = (c + h - (((b << 24) | (b >> 8)) & m)) & m
    return ((c ^ b) & m).to_bytes(_LANE * n, "little")


def key_codes(keys: Sequence[str]) -> list[int]:
    """``abs(hash_code(key))`` for each key, in order."""
    if len(keys) < MIN_BATCH or sys.byteorder != "little":
        return [abs(hash_code(key)) for key in keys]
    encoded = [key.encode("utf-8") for key in keys]
    short = [i for i, data in enumerate(encoded) if 0 < len(data) <= _LANE]
    out = [0] * len(keys)
    if len(short) < len(keys):
        for i, data in enumerate(encoded):
            if not 0 < len(data) <= _LANE:
                out[i] = abs(hash_code(keys[i]))
    if not short:
        return out
    pad, init = _PAD, _INIT
    chosen = [encoded[i] for i in short]
    packed = b"".join([data + pad[len(data)] for data in chosen])
    starts = b"".join([init[len(data)] for data in chosen])
    words = array("H", _final(packed, starts, len(chosen)))
    codes = _ABS
    for i, half in zip(short, words[:: _LANE // 2], strict=True):
        out[i] = codes[half]
    return out
