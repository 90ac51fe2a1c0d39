"""``audience validate`` and ``audience eval`` as a person at a terminal uses them."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from audiencehub.cli.filterql import eval_command, load_profile, validate_command


def run(command: object, args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(command, args)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_validate_ok() -> None:
    code, out, _err = run(validate_command, ['FILTER AND (plan == "pro", INCLUDE buyers)'])
    assert code == 0 and out.strip() == "ok"


def test_validate_error_shows_line_and_caret() -> None:
    code, _out, err = run(validate_command, ['FILTER AND (\n  plan == "pro"\n  visits >\n)'])
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("error: line 4, column 1: unexpected ')'")
    assert lines[1] == ")" and lines[2] == "^"


def test_validate_semantic_error_caret_column() -> None:
    code, _out, err = run(validate_command, ['FILTER x > "now-3q"'])
    assert code == 1
    assert "not valid date math" in err
    assert err.splitlines()[1:3] == ['FILTER x > "now-3q"', "           ^"]


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(
        json.dumps(
            {
                "email": "ada@gmail.com",
                "plan": "pro",
                "last_login": "2026-03-09T12:00:00Z",
                "_events": {"purchase": ["2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"]},
                "_created": "2025-01-01T00:00:00Z",
            }
        )
    )
    return path


def test_eval_prints_answer_and_next_change(tmp_path: Path) -> None:
    prof = _profile(tmp_path)
    code, out, _err = run(
        eval_command,
        [
            "--filter",
            "FILTER timewindow(purchase, 2, 7)",
            "--profile",
            str(prof),
            "--now",
            "2026-03-07T00:00:00Z",
        ],
    )
    assert code == 0
    assert out.splitlines() == ["true", "next change: 2026-03-08T00:00:00Z"]


def test_eval_never_changes(tmp_path: Path) -> None:
    code, out, _err = run(
        eval_command, ["--filter", 'FILTER plan == "pro"', "--profile", str(_profile(tmp_path))]
    )
    assert code == 0 and out.splitlines() == ["true", "next change: never (with no new data)"]


def test_eval_json_with_includes(tmp_path: Path) -> None:
    inc = tmp_path / "audiences.fql"
    inc.write_text(
        '-- people who log in\nFILTER last_login > "now-7d" ALIAS active;\n'
        'FILTER domain(email) == "gmail.com" ALIAS gmail\n'
    )
    code, out, _err = run(
        eval_command,
        [
            "--filter",
            'FILTER AND (INCLUDE active, INCLUDE gmail, _created < "now-30d")',
            "--profile",
            str(_profile(tmp_path)),
            "--now",
            "2026-03-10T00:00:00Z",
            "--includes",
            str(inc),
            "--json",
        ],
    )
    assert code == 0
    data = json.loads(out)
    assert data["matches"] is True
    assert data["next_change"] == "2026-03-16T12:00:00Z"
    assert data["next_change_ns"] is not None
    assert data["includes"] == ["active", "gmail"]
    assert data["fields"] == ["_created", "email", "last_login"]
    assert data["time_dependent"] is True


def test_eval_unknown_include_and_bad_now(tmp_path: Path) -> None:
    prof = str(_profile(tmp_path))
    code, _out, err = run(eval_command, ["--filter", "FILTER INCLUDE nope", "--profile", prof])
    assert code == 1 and "unknown audience 'nope'" in err and "^" in err
    code, _out, err = run(
        eval_command, ["--filter", "FILTER *", "--profile", prof, "--now", "yesterday"]
    )
    assert code == 2 and "RFC 3339" in err


def test_includes_file_needs_aliases(tmp_path: Path) -> None:
    inc = tmp_path / "bad.fql"
    inc.write_text("FILTER x > 1")
    code, _out, err = run(
        eval_command,
        ["--filter", "FILTER *", "--profile", str(_profile(tmp_path)), "--includes", str(inc)],
    )
    assert code == 1 and "needs an ALIAS" in err


def test_profile_file_format(tmp_path: Path) -> None:
    p = load_profile(_profile(tmp_path))
    assert p.fields["plan"] == "pro" and "_events" not in p.fields and "_created" not in p.fields
    assert len(p.occurrences["purchase"]) == 2 and p.created > 0 and p.modified == 0
