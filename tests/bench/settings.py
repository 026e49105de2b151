"""Settings for benchmark processes: production settings plus a bench-only URLconf and a trivial server."""

from askpro.settings import *  # noqa: F403
from askpro.settings import MCP_SERVERS

ROOT_URLCONF = "tests.bench.urls"
MCP_SERVERS = [*MCP_SERVERS, "tests.bench.echo_server.EchoServer"]
