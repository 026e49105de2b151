"""SENTRY_TRACES_SAMPLE_RATE: Sentry performance tracing off by default, on at the given share,
a value outside 0..1 refused at start-up. Settings are loaded in a child process, so the
test run's own Sentry state is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import django, sentry_sdk; django.setup(); "
    "print(repr(sentry_sdk.get_client().options['traces_sample_rate']))"
)


def load(**extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "askpro.settings",
        "DEBUG": "1",
        # Nothing listens there, and nothing is sent: the probe only reads the client's options.
        "SENTRY_DSN": "http://public@127.0.0.1:9/1",
    }
    env.pop("SENTRY_TRACES_SAMPLE_RATE", None)
    env.update(extra)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize(("value", "expected"), [(None, "None"), ("0", "None"), ("0.25", "0.25")])
def test_it_traces_only_when_a_sample_rate_is_set(value, expected):
    result = load(**({"SENTRY_TRACES_SAMPLE_RATE": value} if value is not None else {}))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == expected


def test_it_refuses_a_rate_above_one():
    result = load(SENTRY_TRACES_SAMPLE_RATE="1.5")
    assert result.returncode != 0
    assert "SENTRY_TRACES_SAMPLE_RATE: must be between 0 and 1" in result.stderr
