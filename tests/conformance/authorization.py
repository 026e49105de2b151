"""Run the official conformance suite's authorization-server scenarios against this server.

    .venv/bin/python -m tests.conformance.authorization [--spec-version 2025-11-25|2026-07-28]

The scenarios exist only in the 0.2.0 pre-release (.tools/conformance-next). Like run.py it
serves the app on a throw-away database with gunicorn (DEBUG off; run.conformance_server). It then registers a
public client by dynamic registration for the suite's callback (http://127.0.0.1:<port>/callback),
starts `conformance authorization`, and plays the person the suite asks for: when the suite prints
the authorization URL it signs in as a superuser, allows the consent page, and follows the
redirect to the suite's callback. Failures are compared with baseline-authorization.yml: the run
fails on any failure not listed there, and on a listed one that passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import requests
import yaml
from bs4 import BeautifulSoup

from tests.bench.harness import ROOT, free_port
from tests.conformance.run import CONSENT_PASSWORD, NEXT_BIN, NODE_BIN, conformance_server

BASELINE = Path(__file__).with_name("baseline-authorization.yml")


def consent(base: str, authorization_url: str) -> None:
    """Sign in, allow every scope on every tenant, and deliver the code to the suite's callback."""
    browser = requests.Session()
    login = browser.get(f"{base}/admin/login/", timeout=30)
    token = BeautifulSoup(login.text, "html.parser").find("input", attrs={"name": "csrfmiddlewaretoken"})[
        "value"
    ]
    signed_in = browser.post(
        f"{base}/admin/login/",
        data={
            "csrfmiddlewaretoken": token,
            "username": "conformance",
            "password": CONSENT_PASSWORD,
            "next": "/admin/",
        },
        allow_redirects=False,
        timeout=30,
    )
    if signed_in.status_code != 302:
        raise RuntimeError(f"sign-in failed: {signed_in.status_code}")
    page = browser.get(authorization_url, timeout=30)
    form = BeautifulSoup(page.text, "html.parser").find("form", id="authorizationForm")
    if form is None:
        raise RuntimeError(f"no consent form ({page.status_code}): {page.text[:500]}")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    data.update(tenant="", granted=["*:read"], allow="Allow")
    answer = browser.post(authorization_url, data=data, allow_redirects=False, timeout=30)
    if answer.status_code != 302:
        raise RuntimeError(f"consent failed: {answer.status_code}")
    # The suite's callback server is on 127.0.0.1: this is the redirect a browser would follow.
    requests.get(answer.headers["Location"], timeout=30)


def checks_in(output: Path) -> dict[str, str]:
    """scenario -> worst status, from the suite's checks.json files."""
    found: dict[str, str] = {}
    for path in output.rglob("checks.json"):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", path.parent.name).removeprefix(
            "authorization-server-"
        )
        statuses = {check.get("status") for check in json.loads(path.read_text())}
        found[scenario] = "FAILURE" if "FAILURE" in statuses else "SUCCESS"
    return found


def run_authorization_suite(base: str, spec_version: str) -> tuple[int, str]:
    """The authorization-server scenarios of one spec version against base (a conformance_server,
    whose superuser consents): (exit code, output)."""
    conformance = shutil.which("conformance", path=str(NEXT_BIN))
    if conformance is None:
        return 2, "conformance 0.2.0 not installed (scripts/ensure_conformance.sh)"
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    callback_port = free_port()
    output = ROOT / "var" / "conformance-authorization" / spec_version
    shutil.rmtree(output, ignore_errors=True)
    registered = requests.post(
        f"{base}/oauth/register/",
        json={
            "client_name": "MCP conformance suite",
            "redirect_uris": [f"http://127.0.0.1:{callback_port}/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
        timeout=30,
    )
    registered.raise_for_status()
    command = [
        conformance,
        "authorization",
        "--url",
        base,
        "--client-id",
        registered.json()["client_id"],
        "--resource",
        f"{base}/mcp",
        "--port",
        str(callback_port),
        "--spec-version",
        spec_version,
        "--output-dir",
        str(output),
    ]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if re.match(r"^https?://\S+/oauth/authorize/\?", line.strip()):
            consent(base, line.strip())
    proc.wait(timeout=600)
    results = checks_in(output)
    expected = set((yaml.safe_load(BASELINE.read_text()) or {}).get("authorization") or [])
    failing = {name for name, status in results.items() if status == "FAILURE"}
    printed.append(f"scenarios: {json.dumps(results, sort_keys=True)}\n")
    unexpected, fixed = failing - expected, expected - failing
    if not results:
        return 1, "".join(printed) + "no results found\n"
    if unexpected or fixed:
        printed.append(
            f"Baseline check failed: unexpected failures {sorted(unexpected)}, now passing {sorted(fixed)}\n"
        )
        return 1, "".join(printed)
    return 0, "".join(printed) + "Baseline check passed\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec-version", default="2026-07-28")
    args = parser.parse_args()
    with conformance_server() as server:
        code, output = run_authorization_suite(server.base, args.spec_version)
    print(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
