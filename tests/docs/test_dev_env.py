"""var/dev.env (written by `make run`, read by manage.py) and manage.py's one-line answer to a
setting it cannot start with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from askpro.env import load_env_file

ROOT = Path(__file__).resolve().parents[2]


def test_it_fills_only_what_the_environment_leaves_unset(tmp_path, monkeypatch):
    path = tmp_path / "dev.env"
    path.write_text(
        "# written by make run\n\nASKPRO_T_ONE=1\nASKPRO_T_SET = from file\n"
        'ASKPRO_T_QUOTED="a b"\nASKPRO_T_EMPTY=x\n'
    )
    # Empty values count as unset (as for every reader); monkeypatch removes what the file sets.
    monkeypatch.setenv("ASKPRO_T_ONE", "")
    monkeypatch.setenv("ASKPRO_T_QUOTED", "")
    monkeypatch.setenv("ASKPRO_T_SET", "from environment")
    monkeypatch.setenv("ASKPRO_T_EMPTY", " ")

    assert load_env_file(path) == ["ASKPRO_T_ONE", "ASKPRO_T_QUOTED", "ASKPRO_T_EMPTY"]
    assert os.environ["ASKPRO_T_ONE"] == "1"
    assert os.environ["ASKPRO_T_SET"] == "from environment"
    assert os.environ["ASKPRO_T_QUOTED"] == "a b"
    assert os.environ["ASKPRO_T_EMPTY"] == "x"


def test_it_is_nothing_when_the_file_is_absent(tmp_path):
    assert load_env_file(tmp_path / "absent.env") == []


@pytest.mark.parametrize("line", ["SECRET_KEY sk_live_never_echoed", "1BAD=x", "=x", "export X=1"])
def test_it_refuses_a_line_it_cannot_read_without_echoing_it(tmp_path, line):
    path = tmp_path / "dev.env"
    path.write_text(f"# comment\n{line}\n")
    with pytest.raises(ImproperlyConfigured) as raised:
        load_env_file(path)
    assert str(raised.value) == f"{path}: line 2: expected NAME=value"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A newcomer's shell: none of this test run's settings (DEBUG, DJANGO_SETTINGS_MODULE, ...).
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # DEBUG=0 set explicitly wins over a var/dev.env this checkout may hold.
        ({"DEBUG": "0"}, "manage.py: SECRET_KEY: required when DEBUG is off (set DEBUG=1 for development)"),
        ({"DEBUG": "maybe"}, "manage.py: DEBUG: expected true/false (or 1/0, yes/no), got 'maybe'"),
        ({"DEBUG": "1", "MCP_DEFAULT_TIMEOUT": "soon"}, "manage.py: MCP_DEFAULT_TIMEOUT: expected a number"),
    ],
)
def test_it_names_the_setting_in_one_line_instead_of_a_traceback(env, message):
    result = _manage("create_api_key", "--platform", "--scopes", "*", "--name", "x", **env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_it_still_shows_the_traceback_when_asked(tmp_path):
    result = _manage("check", "--traceback", DEBUG="0")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "SECRET_KEY" in result.stderr.strip().splitlines()[-1]
