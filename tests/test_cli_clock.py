"""``clock set / advance / now``, ``wait --idle`` and the CLI's start-up: on a real Redis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from audiencehub.cli import COMMANDS, main
from workers.config import Settings, settings
from workers.engine import Engine
from workers.pipeline.ingest import Ingestor, list_items
from workers.timefmt import NS_PER_S, parse_rfc3339


@pytest.fixture
def env(cfg: Settings) -> Iterator[Settings]:
    """The CLI's process-wide settings read this test's Redis, in test mode."""
    settings.cache_clear()
    yield cfg
    settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_clock_set_then_now_keeps_running(env: Settings) -> None:
    code, out = run("clock", "set", "2030-01-01T00:00:00Z")
    assert code == 0 and out.startswith("2030-01-01T00:00:0"), out
    code, out = run("clock", "now")
    at = parse_rfc3339(out.strip())
    target = parse_rfc3339("2030-01-01T00:00:00Z")
    assert code == 0 and target <= at < target + 30 * NS_PER_S  # set, and running from there


def test_clock_advance_takes_negative_and_fractional_durations_without_dashes(
    env: Settings,
) -> None:
    run("clock", "set", "2030-01-01T00:00:00Z")
    code, out = run("clock", "advance", "-2h")
    assert code == 0, out
    back = parse_rfc3339(out.strip())
    assert back < parse_rfc3339("2030-01-01T00:00:00Z") - 7100 * NS_PER_S
    code, out = run("clock", "advance", "1.5h")
    assert code == 0 and parse_rfc3339(out.strip()) - back >= 5400 * NS_PER_S
    code, out = run("clock", "advance", "2x")
    assert code == 2 and "is not a duration like 90s" in out


def test_clock_now_explains_itself() -> None:
    code, out = run("clock", "now", "--help")
    assert code == 0 and "engine's now" in out and "keeps running" in out


def test_the_movable_clock_is_refused_outside_test_mode(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCEHUB_MODE", "production")
    settings.cache_clear()
    code, out = run("clock", "set", "2030-01-01T00:00:00Z")
    assert code == 1 and "test mode" in out


def test_wait_idle_reports_what_is_left_and_times_out(env: Settings, engine: Engine) -> None:
    code, out = run("wait", "--idle", "--timeout", "0")
    assert code == 0 and out.strip() == "idle"
    Ingestor(engine).ingest(list_items([{"user_id": "u1", "plan": "pro"}]))  # no worker runs
    code, out = run("wait", "--idle", "--timeout", "0.3")
    assert code == 1 and "1 entries to apply" in out
    code, out = run("wait", "--idle", "--timeout", "0", "--json")
    assert code == 1 and '"idle": false' in out and '"pending_entries": 1' in out


def test_top_level_help_imports_no_command() -> None:
    """``audiencehub --help`` lists the commands without importing them (start-up time)."""
    probe = (
        "import sys\n"
        "from audiencehub.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('workers.engine', 'workers.filterql', 'redis', 'celery', 'rich',"
        " 'audiencehub.cli.jobs', 'fastapi') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout, out.stdout
    assert all(name in out.stdout for name in COMMANDS)


def test_every_listed_command_loads() -> None:
    for name, (load, summary) in COMMANDS.items():
        command = load()
        assert command.name == name and summary, name
