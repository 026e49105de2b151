"""Settings of the processes the cluster tests start: the production settings (every value from
the environment, DEBUG off), the dummy upstream server, breaker thresholds from TEST_MCP_BREAKERS
(JSON), and the test task module for the workers."""

import json
import os

from askpro.settings import *  # noqa: F403
from askpro.settings import MCP_BREAKERS, MCP_SERVERS

MCP_SERVERS = [*MCP_SERVERS, "tests.resilience.dummy_upstream.DummyServer"]
MCP_BREAKERS = json.loads(os.environ.get("TEST_MCP_BREAKERS", "{}")) or MCP_BREAKERS
CELERY_IMPORTS = ["tests.cluster.tasks"]
