"""The official MCP conformance suite's server scenarios against /mcp, in both protocol eras,
with the baselines listing (with reasons) the scenarios that need the suite's fixture tools; and
its authorization-server scenarios against the OAuth endpoints (tests/conformance/authorization.py).
scripts/ensure_conformance.sh installs the suite and Node 22 into .tools/ (make test runs it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.bench.harness import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_it_passes_the_official_conformance_scenarios(era):
    command = [sys.executable, "-m", "tests.conformance.run"] + (["--modern"] if era == "2026-07-28" else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Baseline check passed" in output, output[-4000:]


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_it_passes_the_official_authorization_server_scenarios(era):
    command = [sys.executable, "-m", "tests.conformance.authorization", "--spec-version", era]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Baseline check passed" in output, output[-4000:]
    assert '"authorization-code-grant": "SUCCESS"' in output, output[-4000:]
