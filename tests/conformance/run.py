"""Run the official MCP conformance suite (npm @modelcontextprotocol/conformance) against /mcp.

    .venv/bin/python -m tests.conformance.run [--scenario NAME ...]

Needs Node >= 22 and the suite installed project-locally (nothing global):
    npm i --prefix .tools/node node@22 @modelcontextprotocol/conformance@0.1.16

It creates a throw-away database, serves the app with gunicorn (DEBUG off) and puts a tiny
proxy in front that adds the API key (the suite cannot send headers), then runs every server
scenario with tests/conformance/baseline.yml as the expected failures: scenarios that call the
suite's own fixture tools/resources/prompts, or features this server does not offer. The run
fails on any other failure, and on a baseline entry that unexpectedly passes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.bench.harness import ROOT, bench_database, free_port, gunicorn, run_manage

NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / ".bin"
BASELINE = Path(__file__).with_name("baseline.yml")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@contextlib.contextmanager
def auth_proxy(upstream: str, key: str) -> Iterator[int]:
    """A local reverse proxy that adds `Authorization: Bearer <key>` and forwards everything
    else unchanged (Host and Origin too, so DNS-rebinding checks still see the client's)."""
    host, port = upstream.removeprefix("http://").split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Authorization"] = f"Bearer {key}"
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            finally:
                conn.close()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = _forward

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", action="append", help="Only these scenarios (default: all)")
    args = parser.parse_args()
    conformance = shutil.which("conformance", path=str(NODE_BIN))
    if conformance is None:
        print(
            "conformance suite not installed: npm i --prefix .tools/node node@22 "
            "@modelcontextprotocol/conformance@0.1.16",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with bench_database() as database_url:
        key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "conformance"],
            database_url=database_url,
        ).strip()
        with gunicorn(database_url, workers=2) as base, auth_proxy(base, key) as port:
            url = f"http://localhost:{port}/mcp"
            output = ROOT / "var" / "conformance"
            command = [
                conformance,
                "server",
                "--url",
                url,
                "--expected-failures",
                str(BASELINE),
                "--output-dir",
                str(output),
            ]
            if args.scenario:
                codes = []
                for scenario in args.scenario:
                    codes.append(
                        subprocess.run([*command, "--scenario", scenario], env=env, cwd=ROOT).returncode
                    )
                return max(codes)
            return subprocess.run([*command, "--suite", "all"], env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
