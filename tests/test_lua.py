"""The scripts in workers/lua and the Python side that feeds them agree on names and layouts."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from workers.delivery.outbox import RECORD_FIELDS, Outbox, OutboxRecord, packed_values, records
from workers.engine import Engine
from workers.keys import Keys
from workers.lua import script, source
from workers.pipeline.commit import Committer, ShardCommit
from workers.schedule.due_index import BUCKET_MS, DueIndex

SCRIPTS = sorted(p.stem for p in Path(str(files("workers.lua"))).glob("*.lua"))
ROOT = Path(__file__).resolve().parent.parent


def test_every_script_has_a_header_listing_its_keys_and_argv() -> None:
    assert len(SCRIPTS) >= 8
    for name in SCRIPTS:
        header = "\n".join(line for line in source(name).splitlines() if line.startswith("--"))
        assert "KEYS[1]" in header, name
        assert "ARGV" in header, name


def test_no_lua_inside_python_strings() -> None:
    for folder in ("workers", "tasks", "audiencehub"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "redis.call" not in path.read_text(), path


def test_scripts_name_an_outbox_records_fields_only_through_argv() -> None:
    for name in ("commit", "backfill_page"):
        assert not re.search(r"XADD', \w+, '\*', '", source(name)), name


def test_a_due_bucket_is_named_the_way_the_scripts_derive_it() -> None:
    keys = Keys("p")
    assert keys.due_bucket(3, 2941) == keys.due(3) + ":" + "2941"  # KEYS[due] .. ':' .. bucket


def test_one_registration_per_client(engine: Engine) -> None:
    assert script(engine.r, "commit") is script(engine.r, "commit")


def test_records_written_by_the_commit_and_a_backfill_page_read_back(engine: Engine) -> None:
    e = engine
    record = OutboxRecord("u1", "f" * 32, b'{"data": {}}')
    commit = ShardCommit(e.keys, 0, "", "1-0")
    commit.outbox["job"].append(record)
    commit.due["u1"] = (None, 5 * BUCKET_MS + 7)
    assert Committer(e.r).run(commit)
    page = script(e.r, "backfill_page")
    keys = [e.keys.applied(0), e.keys.backfill_cursor(0, "job"), Outbox(e.keys, 0, "job").key]
    written = [OutboxRecord("u2", "e" * 32, b"{}"), OutboxRecord("\u00fc3", "d" * 32, b"")]
    values = [v for r in written for v in (r.user.encode(), r.key.encode(), r.body)]
    args: list[str | bytes] = ["1-0", "u:u2", *RECORD_FIELDS, *packed_values(values)]
    assert page(keys=keys, args=args) == 1
    read = [r for _, r in records(Outbox(e.keys, 0, "job").all(e.r))]
    assert read == [record, *written]
    assert DueIndex(e.keys, 0).entries(e.r) == {"u1": 5 * BUCKET_MS + 7}
