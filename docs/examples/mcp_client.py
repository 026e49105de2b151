"""Talk to the control plane's /mcp endpoint with the official MCP Python SDK (`mcp` 2.x).

    export ASKPRO_KEY=askp_...      # an API key, e.g. the demo key `make run` printed
    .venv/bin/python docs/examples/mcp_client.py [--url http://127.0.0.1:8000/mcp] [--mode auto]

It lists the tools the key may call, asks for a tenant's call statistics and shows how a
refused call comes back (a tool error, not an exception). `mcp` is in the dev extras
(`make install-dev`); in your own project, `pip install "mcp>=2.3,<3"`.
"""

import argparse
import json
import os
import sys

import anyio
import httpx2  # the SDK's HTTP client since mcp 2.0 (it replaced httpx)
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, key: str, mode: str, tenant: str) -> int:
    # The transport takes no headers of its own: authentication goes on the HTTP client.
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        print(f"protocol {client.protocol_version}, server {client.server_info.name}")

        listed = await client.list_tools()
        names = sorted(tool.name for tool in listed.tools)
        print(f"{len(names)} tools, e.g. {', '.join(names[:3])}")

        # A platform key names the tenant; a tenant key may leave `tenant` out.
        stats = await client.call_tool("database_get_call_stats", {"days": 7, "tenant": tenant})
        if stats.is_error:
            print(f"call failed: {stats.content[0].text}", file=sys.stderr)
            return 1
        summary = {k: stats.structured_content[k] for k in ("days", "total", "failed")}
        print(f"database_get_call_stats: {json.dumps(summary)}")

        # Bad arguments are a tool error whose text starts with the error code.
        bad = await client.call_tool("database_get_call_stats", {"days": "seven", "tenant": tenant})
        print(f"with days='seven': is_error={bad.is_error}: {bad.content[0].text.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/mcp")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=["auto", "legacy", "2026-07-28"],
        help="auto tries the 2026-07-28 protocol first; legacy uses the 2025 initialize handshake",
    )
    parser.add_argument("--tenant", default="salon-sonnenschein")
    args = parser.parse_args()
    key = os.environ.get("ASKPRO_KEY", "").strip()
    if not key:
        sys.exit("ASKPRO_KEY: set it to an API key (askp_...), e.g. the demo key `make run` printed")
    sys.exit(anyio.run(main, args.url, key, args.mode, args.tenant))
