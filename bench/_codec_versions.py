"""The profile codec of another checkout beside this one's, in one process: bytes and CPU per
profile for JSON (version 0), the other tree's encoding and this tree's, interleaved.

Not part of ``make bench`` (the leading underscore): a tool for comparing codec changes on a
shared machine, where two runs of bench/memory.py differ by more than the change. The profiles
are bench/memory.py's drained sample (realistic and large); the other tree's ``workers`` package
is copied to a temporary directory under another name so both load side by side. CPU figures
are codec_us's (read + write back; read + one event + write back), best of ``--rounds``.

    .venv/bin/python bench/_codec_versions.py --old-tree /work/main [--sample 500] [--rounds 15]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import private_redis  # (importing _common puts the project on the path)
from memory import SHARDS, drain_sample

from workers.audiences.numbers import AudienceCodes
from workers.engine import Engine
from workers.pipeline.profile import Profile
from workers.pipeline.profile_codec import legacy_encode

OLD = "workers_old"


def load_old(tree: Path) -> tuple[Any, Any]:
    """The other tree's (Profile, AudienceCodes), from a renamed copy of its ``workers``."""
    where = Path(tempfile.mkdtemp(prefix="audiencehub-codec-old-"))
    shutil.copytree(tree / "workers", where / OLD)
    for path in (where / OLD).rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\b(from|import) workers\b", rf"\1 {OLD}", text))
    sys.path.insert(0, str(where))
    profile = __import__(f"{OLD}.pipeline.profile", fromlist=["Profile"])
    numbers = __import__(f"{OLD}.audiences.numbers", fromlist=["AudienceCodes"])
    return profile.Profile, numbers.AudienceCodes


def runs(
    p_cls: Any, codes: Any, ts: int, dumps: Callable[[Any], bytes]
) -> tuple[Callable[..., None], Callable[..., None]]:
    """(read + write back, read + one event + write back) over (user id, blob) pairs."""
    loads = p_cls.loads

    def plain(blobs: list[tuple[str, bytes]]) -> None:
        for uid, blob in blobs:
            dumps(loads(uid, blob, codes))

    def event(blobs: list[tuple[str, bytes]]) -> None:
        for uid, blob in blobs:
            p = loads(uid, blob, codes)
            p.merge({"visits": 99}, ts)
            p.record_occurrence("page_view", ts, 200)
            dumps(p)

    return plain, event


def compare(title: str, profiles: list[Profile], numbers: dict[str, int], args: Any) -> None:
    old_profile, old_codes_cls = args.old
    new_codes, old_codes = AudienceCodes(numbers), old_codes_cls(numbers)
    blobs = {
        "JSON": [(p.user_id, legacy_encode(p)) for p in profiles],
        "old": [
            (p.user_id, old_profile.loads(p.user_id, legacy_encode(p)).dumps(old_codes))
            for p in profiles
        ],
        "new": [(p.user_id, p.dumps(new_codes)) for p in profiles],
    }
    for p, (uid, blob) in zip(profiles, blobs["old"], strict=True):
        assert Profile.loads(uid, blob, new_codes) == p, "what the old tree wrote reads back"
    ts = max(p.modified for p in profiles) + 1_000_000
    fns = {
        "JSON": runs(Profile, new_codes, ts, legacy_encode),
        "old": runs(old_profile, old_codes, ts, lambda p: p.dumps(old_codes)),
        "new": runs(Profile, new_codes, ts, lambda p: p.dumps(new_codes)),
    }
    best: dict[tuple[str, int], float] = {}
    for _ in range(args.rounds):
        for kind in (0, 1):
            for name, fn in fns.items():
                t = time.process_time()
                fn[kind](blobs[name])
                took = time.process_time() - t
                best[name, kind] = min(best.get((name, kind), took), took)
    n = len(profiles)
    print(f"== {title}: {n} drained profiles, CPU µs per profile, best of {args.rounds}")
    for name in fns:
        size = sum(len(b) for _, b in blobs[name]) / n
        plain, event = (best[name, k] / n * 1e6 for k in (0, 1))
        ratio = f" ({plain / (best['JSON', 0] / n * 1e6):.2f}x, {event / (best['JSON', 1] / n * 1e6):.2f}x)"
        print(
            f"  {name:>4}: {size:6,.0f} bytes encoded; read + write back {plain:5.1f} µs, "
            f"with one event {event:5.1f} µs{'' if name == 'JSON' else ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old-tree", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    args.old = load_old(args.old_tree.resolve())
    with private_redis("codec", SHARDS) as (cfg, r):
        for title, c, users, fields, occurrences in (
            ("realistic profile", cfg, args.sample, 10, 20),
            (
                "large profile",
                dataclasses.replace(cfg, occurrences_kept=200),
                max(1, args.sample // 10),
                50,
                200,
            ),
        ):
            r.flushall()
            engine = Engine.create(cfg=c, r=r)
            profiles = drain_sample(engine, users, fields, occurrences)
            given = engine.registry.get().codes.numbers
            numbers = {aid: n for aid, n in given.items() if isinstance(n, int)}
            compare(title, profiles, numbers, args)


if __name__ == "__main__":
    main()
