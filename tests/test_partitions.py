"""Partition-key hashing: the same lookup3 hash as the azure-eventhub SDK, the service's modulo.

The SDK's buffered-mode resolver is the executable reference we have installed; its hash is
checked key for key. Its final step differs from the service (and from the .NET, Java and JS
SDKs) for negative hashes, and it hashes code points rather than UTF-8 bytes; both differences
are pinned here so nobody "fixes" our function back to the SDK's.
"""

from __future__ import annotations

import random
import string
import uuid
from collections import Counter
from typing import Any

import pytest
from azure.eventhub._buffered_producer import _partition_resolver
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.delivery.eventhub.partitions import (
    hash_code,
    hash_codes,
    partition_for_key,
    partition_index,
)

_SDK: Any = _partition_resolver  # the SDK module is untyped


def generate_hash_code(key: str) -> int:
    """The SDK's hash (buffered mode)."""
    return int(_SDK.generate_hash_code(key))


def sdk_partition(key: str, ids: list[str]) -> str:
    """The SDK's partition choice for ``key`` (buffered mode)."""
    return str(_SDK.PartitionResolver(ids).get_partition_id_by_partition_key(key))


def _keys(n: int, seed: int = 5) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n // 2)]
    keys += ["".join(rng.choices(alphabet, k=rng.randrange(0, 90))) for _ in range(n // 2)]
    keys += [str(i) for i in range(200)] + ["", "a", "user-1", "x" * 12, "y" * 24, "z" * 25]
    return keys


def test_hash_matches_the_sdk_on_many_ascii_keys() -> None:
    keys = _keys(20_000)
    assert [hash_code(k) for k in keys] == [generate_hash_code(k) for k in keys]


def test_a_round_of_keys_hashed_together_matches_the_sdk() -> None:
    keys = _keys(20_000)
    assert hash_codes(keys) == [generate_hash_code(k) for k in keys]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 60),
    st.lists(st.text(alphabet="az09~é\U0001f600", min_size=0, max_size=3), max_size=90),
    st.lists(st.text(max_size=40), max_size=10),
)
def test_keys_hashed_side_by_side_hash_as_one_by_one(
    size: int, tails: list[str], others: list[str]
) -> None:
    """Many keys of one length (hashed in lanes) among others, in any order, any text."""
    keys = ["k" * size + tail for tail in tails] + others
    random.Random(size).shuffle(keys)
    assert hash_codes(keys) == [hash_code.__wrapped__(k) for k in keys]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=64))
def test_hash_matches_the_sdk_for_any_ascii_text(key: str) -> None:
    assert hash_code(key) == generate_hash_code(key)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_hash_is_over_utf8_bytes(key: str) -> None:
    # Feeding the SDK one character per UTF-8 byte makes its ord()-based hash a byte hash.
    assert hash_code(key) == generate_hash_code(key.encode("utf-8").decode("latin-1"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("7", -15263),
        ("131", 30562),
        ("7149583486996073602", 12977),
        ("FWfAT", -22341),
        ("sOdeEAsyQoEuEFPGerWO", -6503),
        ("$0cb", 26269),
        ("-4189260826195535198", 453),
        ("!c*_!I@1^c", 15372),
        ("p4*!jioeO/z-!-;w:dh", -3104),
    ],
)
def test_hash_matches_published_service_vectors(key: str, expected: int) -> None:
    """Hash values from the .NET SDK's PartitionResolver tests (a port of the service code)."""
    assert hash_code(key) == expected


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8, 16, 32, 100])
def test_partition_agrees_with_the_sdk_wherever_the_sdk_follows_the_service(count: int) -> None:
    ids = [str(i) for i in range(count)]
    sdk = _SDK.PartitionResolver(ids)
    agree = differ = 0
    for key in _keys(4000, seed=count):
        h = hash_code(key)
        ours = partition_for_key(key, ids)
        assert ours == ids[abs(h) % count]  # C#: Math.Abs(h % n)
        theirs = str(sdk.get_partition_id_by_partition_key(key))
        if h >= 0 or h % count == 0:
            assert ours == theirs, key
            agree += 1
        else:
            assert theirs == ids[h % count]  # Python's floor modulo
            differ += ours != theirs
    assert agree > 1000


def test_known_divergence_from_the_python_sdk() -> None:
    ids = ["0", "1", "2", "3"]
    assert partition_for_key("7", ids) == "3"  # the service, .NET, Java, JS
    assert sdk_partition("7", ids) == "1"


def test_partition_ids_are_used_in_the_hub_order() -> None:
    ids = ["a", "b", "c"]
    assert partition_for_key("user-1", ids) == ids[partition_index("user-1", 3)]
    with pytest.raises(ValueError):
        partition_index("k", 0)


def test_keys_spread_over_partitions() -> None:
    counts = Counter(
        partition_for_key(f"user-{i}", [str(p) for p in range(8)]) for i in range(8000)
    )
    assert len(counts) == 8
    assert min(counts.values()) > 800
