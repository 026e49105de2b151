"""The official MCP conformance suite's server scenarios against /mcp, in both protocol eras,
with the baselines listing (with reasons) the scenarios that need the suite's fixture tools; and
its authorization-server scenarios against the OAuth endpoints (tests/conformance/authorization.py).
scripts/ensure_conformance.sh installs the suite and Node 22 into .tools/ (make test runs it)."""

from __future__ import annotations

import pytest

from tests.conformance.authorization import run_authorization_suite
from tests.conformance.run import conformance_server, run_server_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    """One database and gunicorn for the four runs (each its own would start them four times)."""
    with conformance_server() as served:
        yield served


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_it_passes_the_official_conformance_scenarios(server, era):
    code, output = run_server_suite(server.base, server.key, modern=era == "2026-07-28")
    assert code == 0, output[-4000:]
    assert "Baseline check passed" in output, output[-4000:]


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
def test_it_passes_the_official_authorization_server_scenarios(server, era):
    code, output = run_authorization_suite(server.base, era)
    assert code == 0, output[-4000:]
    assert "Baseline check passed" in output, output[-4000:]
    assert '"authorization-code-grant": "SUCCESS"' in output, output[-4000:]
