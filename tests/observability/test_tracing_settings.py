"""The OTEL_* variables the project reads: a bad value stops start-up naming the variable (a typo
must not silently lose every span), and the on-switch is OTEL_TRACES_EXPORTER. Settings load in
child processes, so this run's own state is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django; django.setup(); from django.conf import settings; from mcp_core import tracing; "
    "print(settings.OTEL_TRACING, tracing.provider() is not None)"
)


def _start(**variables: str) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "askpro.settings", "DEBUG": "1"}
    for name in list(env):
        if name.startswith("OTEL_"):
            del env[name]
    env.update(variables)
    return subprocess.Popen(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


BAD = [
    ("OTEL_TRACES_EXPORTER", "jaeger"),
    ("OTEL_TRACES_EXPORTER", "none,otlp"),
    ("OTEL_TRACES_SAMPLER", "sometimes"),
    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
    ("OTEL_SDK_DISABLED", "perhaps"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector/v1/traces"),
]


def test_it_stops_start_up_naming_the_bad_otel_variable():
    children = [(name, _start(**{name: value})) for name, value in BAD]
    for name, child in children:
        _, stderr = child.communicate(timeout=60)
        assert child.returncode != 0, name
        last = stderr.strip().splitlines()[-1]
        assert "ImproperlyConfigured" in last and name in last, (name, last)


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp,console",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.25",
            },
            True,
        ),  # fmt: skip
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_it_traces_only_when_an_exporter_is_named_and_the_sdk_is_not_disabled(variables, on):
    child = _start(**variables)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr[-2000:]
    assert stdout.split() == [str(on), str(on)]
