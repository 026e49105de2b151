"""Settings for server processes started by the resilience tests: the test settings plus the
dummy upstream server, with breaker thresholds from the environment (JSON)."""

import json
import os

from askpro.settings_test import *  # noqa: F403

MCP_SERVERS = ["mcp_servers.database.server.DatabaseServer", "tests.resilience.dummy_upstream.DummyServer"]
MCP_BREAKERS = json.loads(os.environ.get("TEST_MCP_BREAKERS", "{}")) or MCP_BREAKERS  # noqa: F405
