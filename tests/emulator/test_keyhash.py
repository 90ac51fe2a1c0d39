"""The stand-in's batched partition-key hash is the service's hash, key for key."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from audiencehub.emulator.keyhash import MIN_BATCH, key_codes
from workers.delivery.eventhub.partitions import hash_code


def _expected(keys: list[str]) -> list[int]:
    return [abs(hash_code(key)) for key in keys]


def test_every_length_and_alphabet_against_hash_code() -> None:
    rng = random.Random(15)
    alphabet = "abcXYZ0189-_~ é€😀\u0100"
    for size in (1, MIN_BATCH - 1, MIN_BATCH, 63, 64, 65, 200, 1600):
        keys = [
            "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20))) for _ in range(size)
        ]
        keys += [f"user{rng.randrange(10**7):07d}" for _ in range(size)]
        assert key_codes(keys) == _expected(keys)


def test_keys_at_the_lane_boundary() -> None:
    # 11, 12 and 13 UTF-8 bytes: the last two sides of the one-lane (final mix only) case.
    keys = ["a" * 11, "a" * 12, "a" * 13, "é" * 6, "é" * 7, "", "7", "user-000001"] * 3
    assert key_codes(keys) == _expected(keys)


# Surrogates (category Cs) cannot be UTF-8 encoded; no JSON or AMQP key carries one.
_KEY = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=24)


@given(st.lists(_KEY, min_size=MIN_BATCH, max_size=80))
def test_any_text(keys: list[str]) -> None:
    assert key_codes(keys) == _expected(keys)
