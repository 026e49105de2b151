"""Settings readers stop start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from askpro import env


@pytest.mark.parametrize(
    ("reader", "name", "value"),
    [
        (lambda n: env.env_bool(n, False), "ASKPRO_T_BOOL", "maybe"),
        (lambda n: env.env_int(n, 1), "ASKPRO_T_INT", "ten"),
        (lambda n: env.env_int(n, 1, minimum=5), "ASKPRO_T_INT", "4"),
        (lambda n: env.env_int(n, 1, maximum=5), "ASKPRO_T_INT", "6"),
        (lambda n: env.env_float(n, 1.0), "ASKPRO_T_FLOAT", "fast"),
        (lambda n: env.env_float(n, 1.0, minimum=0.1), "ASKPRO_T_FLOAT", "0"),
        (
            lambda n: env.parse_database_url(n, os.environ[n], base_dir=Path("/tmp")),
            "ASKPRO_T_DB",
            "mysql://x/y",
        ),
        (
            lambda n: env.parse_database_url(n, os.environ[n], base_dir=Path("/tmp")),
            "ASKPRO_T_DB",
            "postgres://h/",
        ),
        (
            lambda n: env.parse_database_url(n, os.environ[n], base_dir=Path("/tmp")),
            "ASKPRO_T_DB",
            "postgres://h:x/db",
        ),
        (
            lambda n: env.parse_database_url(n, os.environ[n], base_dir=Path("/tmp")),
            "ASKPRO_T_DB",
            "sqlite://",
        ),
        (lambda n: env.check_redis_url(n, os.environ[n]), "ASKPRO_T_REDIS", "http://localhost:6379"),
        (lambda n: env.check_redis_url(n, os.environ[n]), "ASKPRO_T_REDIS", "redis://h:port/0"),
        (lambda n: env.env_secret(n), "ASKPRO_T_SECRET_FILE", "/nonexistent/secret"),
    ],
)
def test_it_names_the_variable_with_a_bad_value(reader, name, value, monkeypatch):
    monkeypatch.setenv(name, value)
    variable = name.removesuffix("_FILE")
    with pytest.raises(ImproperlyConfigured, match=name):
        reader(variable if name.endswith("_FILE") else name)


def test_it_reads_good_values(monkeypatch, tmp_path):
    monkeypatch.setenv("ASKPRO_T_BOOL", "Yes")
    monkeypatch.setenv("ASKPRO_T_INT", " 7 ")
    monkeypatch.setenv("ASKPRO_T_LIST", "a, b  c")
    monkeypatch.setenv("ASKPRO_T_EMPTY", "  ")
    (tmp_path / "s").write_text("s3cret\n")
    monkeypatch.setenv("ASKPRO_T_SECRET_FILE", str(tmp_path / "s"))
    assert env.env_bool("ASKPRO_T_BOOL", False) is True
    assert env.env_int("ASKPRO_T_INT", 1) == 7
    assert env.env_list("ASKPRO_T_LIST", []) == ["a", "b", "c"]
    assert env.env_str("ASKPRO_T_EMPTY", "default") == "default"
    assert env.env_secret("ASKPRO_T_SECRET") == "s3cret"
    db = env.parse_database_url(
        "D", "postgres://u:p%40ss@db.example:6543/name?sslmode=require", base_dir=tmp_path
    )
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "u",
        "p@ss",
        "db.example",
        "6543",
        "name",
    )
    assert db["OPTIONS"] == {"sslmode": "require"}
    assert env.parse_database_url("D", "sqlite:///rel.db", base_dir=tmp_path)["NAME"] == str(
        tmp_path / "rel.db"
    )
    assert env.parse_database_url("D", "sqlite:////abs/x.db", base_dir=tmp_path)["NAME"] == "/abs/x.db"


START_UP_CASES = [
    ("DEBUG", "perhaps"),
    ("MCP_DEFAULT_TIMEOUT", "soon"),
    ("DATABASE_URL", "oracle://x/y"),
    ("REDIS_URL", "nope"),
    ("SECRET_KEY", None),  # unset without DEBUG
    ("REQUEST_MAX_BODY_BYTES", "10"),  # input limits (docs/input-limits.md)
    ("REQUEST_MAX_JSON_DEPTH", "5000"),
    ("MCP_PARAMS_MAX_YEAR", "1800"),  # not after MCP_PARAMS_MIN_YEAR
]


def test_it_stops_start_up_naming_the_variable():
    """The real settings module, imported in fresh processes (run side by side), one bad variable each."""
    children = []
    for variable, value in START_UP_CASES:
        env_vars = {**os.environ, "DJANGO_SETTINGS_MODULE": "askpro.settings", "DEBUG": "1"}
        if value is None:
            env_vars["DEBUG"] = "0"
            env_vars.pop(variable, None)
            env_vars.pop(f"{variable}_FILE", None)
        else:
            env_vars[variable] = value
        child = subprocess.Popen(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=settings.BASE_DIR,
            env=env_vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append((variable, child))
    for variable, child in children:
        _, stderr = child.communicate(timeout=60)
        assert child.returncode != 0, variable
        last = stderr.strip().splitlines()[-1]
        assert "ImproperlyConfigured" in last and variable in last, (variable, last)
