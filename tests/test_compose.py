"""docker-compose.yml cannot run here (no Docker engine), so load it and check what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from audiencehub.cli import main

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def services() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return dict(loaded["services"])


def test_redis_keeps_an_append_only_file() -> None:
    redis = services()["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_worker_beat_and_flower_run_the_celery_app_on_the_same_redis() -> None:
    s = services()
    assert s["worker"]["command"][:4] == ["celery", "-A", "tasks", "worker"]
    assert s["beat"]["command"][:4] == ["celery", "-A", "tasks", "beat"]
    assert s["flower"]["command"][:4] == ["celery", "-A", "tasks", "flower"]
    assert "--basic-auth" in " ".join(s["flower"]["command"])
    for name in ("worker", "beat", "flower"):
        env = s[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert "AUDIENCEHUB_SECRET_KEY" in env
        assert s[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_exactly_one_beat_and_a_scalable_worker() -> None:
    s = services()
    assert s["beat"]["deploy"]["replicas"] == 1
    assert "deploy" not in s["worker"] or "replicas" not in s["worker"]["deploy"]
    assert "container_name" not in s["worker"], "a fixed name would stop --scale worker=4"
    queues = s["worker"]["command"][s["worker"]["command"].index("-Q") + 1].split(",")
    assert set(queues) == {"ingest", "deliver", "backfill", "schedule"}


def test_the_hub_emulator_command_is_one_the_cli_accepts() -> None:
    command = services()["hub-emulator"]["command"]
    assert command[:2] == ["audiencehub", "hub-emulator"]
    result = CliRunner().invoke(main, [*command[1:], "--help"])
    assert result.exit_code == 0, result.output
    for option in command[2:]:
        if option.startswith("--"):
            assert option in result.output, f"{option} is not an option of hub-emulator"


def test_the_api_is_served_with_tokens_and_a_valid_command() -> None:
    api = services()["api"]
    assert api["command"][:2] == ["audiencehub", "api"]
    assert "AUDIENCEHUB_API_TOKENS" in api["environment"]
    assert api["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    result = CliRunner().invoke(main, [*api["command"][1:], "--help"])
    assert result.exit_code == 0, result.output
    for option in api["command"][2:]:
        if option.startswith("--"):
            assert option in result.output
