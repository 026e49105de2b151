"""The production settings exactly (askpro.settings: its URLconf, WhiteNoise, the manifest
storage), plus the trivial echo server whose calls bench_production measures."""

from askpro.settings import *  # noqa: F403
from askpro.settings import MCP_SERVERS

MCP_SERVERS = [*MCP_SERVERS, "tests.bench.echo_server.EchoServer"]
