"""``hub-emulator`` as a command: ready line, options, clean shutdown, ``dump`` and ``faults``."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import requests

from tests.emulator.helpers import ROOT, HubProcess, clean_env, item, started
from workers.delivery.eventhub.partitions import partition_for_key


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audiencehub.emulator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean_env(), **(env or {})},
    )


@pytest.fixture(scope="module")
def filled() -> Iterator[HubProcess]:
    """A stand-in holding a few readable events."""
    for hub in started("--hub", "dumped", "--partitions", "2"):
        sent = [
            item(orjson.dumps({"user_id": "u1", "n": 1}).decode(), "u1", idempotency_key="k1"),
            item("not json at all", None, idempotency_key="k2"),
        ]
        for one in sent:  # one partition key per send
            assert hub.post([one]).status_code == 201
        yield hub


def test_sigterm_and_sigint_exit_cleanly() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        hub = HubProcess()
        try:
            # An idle keep-alive connection must not keep it from stopping.
            assert hub.post([item("x")]).status_code == 201
            with socket.create_connection((hub.conn.host, hub.conn.port or 80)):
                assert hub.signal(sig) == 0
            log = hub.log()
            assert "shutting down" in log and "stopped after" in log
            assert "Traceback" not in log
        finally:
            hub.stop()


def test_sigterm_with_a_request_in_flight_exits_cleanly() -> None:
    hub = HubProcess("--faults", '{"delay_ms": 5000}')
    try:
        outcome: list[str] = []

        def send() -> None:
            try:
                outcome.append(str(hub.post([item("x")]).status_code))
            except requests.ConnectionError:
                outcome.append("closed")

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(0.3)
        assert hub.signal(signal.SIGTERM) == 0
        sender.join(timeout=10)
        assert outcome == ["closed"]
        assert "Traceback" not in hub.log()
    finally:
        hub.stop()


def test_defaults_keys_and_options() -> None:
    first, second = HubProcess(), HubProcess("--hub", "one", "--hub", "two", "--partitions", "3")
    try:
        assert first.conn.hub == "audiencehub"
        assert first.conn.key_name == "RootManageSharedAccessKey"
        assert first.conn.key != second.conn.key  # random unless given
        assert first.first_line.endswith(";UseDevelopmentEmulator=true")
        assert second.conn.hub == "one"
        info = second.control("GET", "/_emulator/hubs/two").json()
        assert info["partition_ids"] == ["0", "1", "2"]
    finally:
        first.stop()
        second.stop()


def test_several_key_pairs_are_all_accepted() -> None:
    for hub in started("--key-name", "send", "--key", "s1", "--key-name", "manage", "--key", "s2"):
        assert hub.conn.key_name == "send" and hub.conn.key == "s1"
        assert (
            hub.post([item("a")], token=hub.token(key_name="manage", key="s2")).status_code == 201
        )
        assert (
            hub.post([item("b")], token=hub.token(key_name="manage", key="s1")).status_code == 401
        )


def test_key_from_the_environment() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "audiencehub.emulator", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**clean_env(), "AUDIENCEHUB_HUB_EMULATOR_KEY": "from-env"},
    )
    try:
        assert proc.stdout is not None
        assert "SharedAccessKey=from-env;" in proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()


def test_basic_tier_batch_limit() -> None:
    for hub in started("--max-batch-bytes", "262144"):
        big = orjson.dumps([item("x" * 1000) for _ in range(300)])
        assert 262_144 < len(big) < 1_048_576
        resp = hub.post(big)
        assert resp.status_code == 413 and "262144" in resp.text
        assert hub.post([item("x" * 1000) for _ in range(200)]).status_code == 201


def test_initial_fault_plan_from_the_command_line() -> None:
    for hub in started("--faults", '{"status": 503, "count": 1}'):
        assert hub.post([item("a")]).status_code == 503
        assert hub.post([item("a")]).status_code == 201


def test_usage_errors() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        taken = _cli("--port", str(port))
        assert taken.returncode != 0 and "cannot listen" in taken.stderr
        assert taken.stdout == ""
    finally:
        busy.close()
    bad = _cli("--key-name", "a", "--key-name", "b", "--key", "x")
    assert bad.returncode == 2 and "one --key per --key-name" in bad.stderr
    bad_hub = _cli("--hub", "no/slash")
    assert bad_hub.returncode == 2 and "not valid" in bad_hub.stderr
    bad_faults = _cli("--faults", '{"status": 200}')
    assert bad_faults.returncode == 2 and "rules[0].status" in bad_faults.stderr


def test_dump_prints_events_readably(filled: HubProcess) -> None:
    out = _cli("dump", "--url", filled.base)
    assert out.returncode == 0, out.stderr
    partition = partition_for_key("u1", ["0", "1"])
    assert f"dumped · partition {partition} · seq " in out.stdout
    assert "key u1" in out.stdout and "key -" in out.stdout
    assert "properties: idempotency_key=k1" in out.stdout
    assert '     "user_id": "u1",' in out.stdout  # pretty-printed, indented
    assert "   not json at all" in out.stdout
    assert "2 event(s)" in out.stderr


def test_dump_json_matches_readback_and_accepts_a_connection_string(filled: HubProcess) -> None:
    out = _cli("dump", "--url", filled.first_line, "--json")
    assert out.returncode == 0, out.stderr
    lines = [orjson.loads(line) for line in out.stdout.splitlines()]
    expected = [{"hub": "dumped", **e} for e in filled.events("dumped")]
    assert lines == expected


def test_dump_reports_an_unreachable_stand_in() -> None:
    out = _cli("dump", "--url", "http://127.0.0.1:9")
    assert out.returncode == 1 and "cannot reach the hub stand-in" in out.stderr


def test_faults_command_sets_shows_and_clears(filled: HubProcess) -> None:
    try:
        out = _cli("faults", "--url", filled.base, '{"status": 429, "share": 0.5}')
        assert out.returncode == 0, out.stderr
        assert orjson.loads(out.stdout)["rules"][0]["status"] == 429
        shown = orjson.loads(_cli("faults", "--url", filled.base).stdout)
        assert shown["rules"][0]["share"] == 0.5
        bad = _cli("faults", "--url", filled.base, '{"status": 1}')
        assert bad.returncode == 1 and "rules[0].status" in bad.stderr
    finally:
        cleared = _cli("faults", "--url", filled.base, "--clear")
    assert orjson.loads(cleared.stdout) == {"seed": None, "rules": []}


def test_help_lists_the_options() -> None:
    out = _cli("--help")
    for option in (
        "--port",
        "--host",
        "--hub",
        "--partitions",
        "--key-name",
        "--key",
        "--max-batch-bytes",
    ):
        assert option in out.stdout
    assert "dump" in out.stdout


def test_tail_follows_new_messages_one_line_each_markup_and_controls_verbatim() -> None:
    ids = ["0", "1"]
    for hub in started("--hub", "tailed", "--partitions", "2"):
        assert hub.post([item("before", "u1")], hub="tailed").status_code == 201
        follower = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from audiencehub.cli import main; main()",
                "hub-emulator",
                "tail",
                "--url",
                hub.first_line,
                "--count",
                "2",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            assert follower.stderr is not None
            assert "following tailed, every partition, from now on" in follower.stderr.readline()
            hostile = "[bold red]x[/] \x1b[2J\nsecond line"
            sent = [item(hostile, "u2", idempotency_key="[i]k\n"), item("plain", "u3")]
            for entry in sent:
                assert hub.post([entry], hub="tailed").status_code == 201
            out, _ = follower.communicate(timeout=30)
        finally:
            follower.kill()
            follower.wait()
        assert follower.returncode == 0
        first, second = out.splitlines()
        held = hub.events("tailed")
        assert first == (
            f"{held[1]['received_at']} tailed/{partition_for_key('u2', ids)} "
            f"#{held[1]['sequence_number']} key=u2 idempotency_key=[i]k\\n "
            "[bold red]x[/] \\x1b[2J\\nsecond line"
        )
        assert second.endswith(" key=u3 plain")

        out_json = _cli(
            "tail", "--url", hub.base, "--hub", "tailed", "--from-start", "--json", "--count", "3"
        )
        assert [orjson.loads(line) for line in out_json.stdout.splitlines()] == [
            {"hub": "tailed", **e} for e in held
        ]
        one = _cli(
            "tail",
            "--url",
            hub.base,
            "--hub",
            "tailed",
            "--from-start",
            "--partition",
            partition_for_key("u1", ids),
            "--count",
            "1",
        )
        assert one.stdout.endswith(" key=u1 before\n")
        missing = _cli("tail", "--url", hub.base, "--hub", "nope", "--count", "1")
        assert missing.returncode == 1 and "does not exist" in missing.stderr
    gone = _cli("tail", "--url", "http://127.0.0.1:9", "--hub", "x")
    assert gone.returncode == 1 and "cannot reach the hub stand-in" in gone.stderr
