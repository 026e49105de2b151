"""Serve the MCP tools over stdio for local clients (Claude Desktop, Claude Code, Inspector)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys

from django.core.management.base import BaseCommand

from mcp_core.api_keys import api_key_authenticate
from mcp_core.mcp.stdio import read_lines, serve

logger = logging.getLogger("mcp_core.mcp.stdio")


class Command(BaseCommand):
    help = (
        "Serve the MCP endpoint's tools over stdio (JSON-RPC, one message per line). "
        "Authenticates with the API key in the MCP_API_KEY environment variable."
    )
    requires_system_checks = []  # checks would print to stdout; the registry is validated on use

    def handle(self, *args, **options) -> None:
        # stdout carries protocol messages only: anything else printed by accident (a stray
        # print, a library warning) goes to stderr instead.
        protocol_out = sys.stdout
        sys.stdout = sys.stderr
        api_key = os.environ.get("MCP_API_KEY", "").strip()
        if not api_key:
            sys.stderr.write("mcp_stdio: set MCP_API_KEY to an API key (manage.py create_api_key)\n")
            sys.exit(1)
        principal = api_key_authenticate(api_key)
        if principal is None:
            sys.stderr.write("mcp_stdio: MCP_API_KEY is not a valid, active API key\n")
            sys.exit(1)
        logger.info("mcp_stdio serving as %s", principal.name)
        # Clients stop a stdio server with SIGTERM; exiting through SystemExit (not the default
        # abrupt death) lets atexit write the audit rows still queued (mcp_core.recorder).
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        with contextlib.suppress(KeyboardInterrupt):
            # Bytes, line by line and bounded: text mode would die on the first byte that is
            # not UTF-8, and an endless line would be read whole into memory.
            serve(read_lines(sys.stdin.buffer), protocol_out, api_key)
        logger.info("mcp_stdio: stdin closed, exiting")
