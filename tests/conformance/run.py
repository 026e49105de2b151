"""Run the official MCP conformance suite (npm @modelcontextprotocol/conformance) against /mcp.

    .venv/bin/python -m tests.conformance.run [--scenario NAME ...]   # 2025 era, suite 0.1.16
    .venv/bin/python -m tests.conformance.run --modern                # 2026-07-28 requirements

Needs Node >= 22 and the suite installed project-locally (nothing global):
    npm i --prefix .tools/node node@22 @modelcontextprotocol/conformance@0.1.16
    npm i --prefix .tools/conformance-next @modelcontextprotocol/conformance@0.2.0-alpha.12

It creates a throw-away database (conformance_server, shared by every run of the tests), serves the app with gunicorn (DEBUG off) and puts a tiny
proxy in front that adds the API key (the suite cannot send headers), then runs every server
scenario with tests/conformance/baseline.yml (baseline-2026.yml) as the expected failures: scenarios that call the
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
from types import SimpleNamespace

from tests.bench.harness import ROOT, bench_database, free_port, gunicorn, run_manage

# The superuser who consents in the authorization scenarios (authorization.py).
CONSENT_PASSWORD = "conformance-password-1"
NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / ".bin"
# The 2026-07-28 scenarios exist only in the 0.2.0 pre-releases:
#   npm i --prefix .tools/conformance-next @modelcontextprotocol/conformance@0.2.0-alpha.12
NEXT_BIN = ROOT / ".tools" / "conformance-next" / "node_modules" / ".bin"
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


@contextlib.contextmanager
def conformance_server() -> Iterator[SimpleNamespace]:
    """One throw-away database and gunicorn (DEBUG off) for any number of suite runs: a
    platform API key for the server scenarios, a superuser for the authorization scenarios'
    consent (tests/conformance/authorization.py). Yields base (URL) and key."""
    with bench_database() as database_url:
        key = run_manage(
            ["create_api_key", "--platform", "--scopes", "*", "--name", "conformance"],
            database_url=database_url,
        ).strip()
        run_manage(
            ["createsuperuser", "--noinput", "--username", "conformance", "--email", "c@example.com"],
            database_url=database_url,
            DJANGO_SUPERUSER_PASSWORD=CONSENT_PASSWORD,
        )
        with gunicorn(database_url, workers=2) as base:
            yield SimpleNamespace(base=base, key=key)


def suite_command(modern: bool) -> str | None:
    return shutil.which("conformance", path=str(NEXT_BIN if modern else NODE_BIN))


def run_server_suite(
    base: str, key: str, *, modern: bool, scenarios: list[str] | None = None
) -> tuple[int, str]:
    """Every server scenario (or the named ones) of one era against base/mcp: (exit code, output)."""
    conformance = suite_command(modern)
    if conformance is None:
        return 2, "conformance suite not installed (scripts/ensure_conformance.sh)"
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with auth_proxy(base, key) as port:
        baseline = Path(__file__).with_name("baseline-2026.yml" if modern else "baseline.yml")
        command = [
            conformance,
            "server",
            "--url",
            f"http://localhost:{port}/mcp",
            "--expected-failures",
            str(baseline),
            "--output-dir",
            str(ROOT / "var" / "conformance"),
        ]
        runs = (
            [[*command, "--scenario", scenario] for scenario in scenarios]
            if scenarios
            else [[*command, *(["--requirements", "2026-07-28"] if modern else ["--suite", "all"])]]
        )
        results = [
            subprocess.run(run, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            for run in runs
        ]
    return max(r.returncode for r in results), "".join(r.stdout + r.stderr for r in results)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", action="append", help="Only these scenarios (default: all)")
    parser.add_argument(
        "--modern",
        action="store_true",
        help="The 2026-07-28 requirements with the 0.2.0 pre-release (installed in .tools/conformance-next)",
    )
    args = parser.parse_args()
    if suite_command(args.modern) is None:
        print(
            "conformance suite not installed: npm i --prefix .tools/node node@22 "
            "@modelcontextprotocol/conformance@0.1.16",
            file=sys.stderr,
        )
        return 2
    with conformance_server() as server:
        code, output = run_server_suite(server.base, server.key, modern=args.modern, scenarios=args.scenario)
    print(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
