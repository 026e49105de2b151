"""The first hour works as written: README.md's shell blocks run, in order, after `make run` in a
fresh copy of this checkout, the way a newcomer types them in a second shell.

The copy holds the files a clone would (tracked and untracked-but-not-ignored ones), so an
uncommitted README edit is tested too. It reuses this checkout's `.venv` (a symlink, with the
install stamps, so that make does not reinstall into it) and `.tools` (Node 22 and the MCP
Inspector, installed by scripts/ensure_conformance.sh in `make test`). `make run` serves on a
free port with a clean environment (no DEBUG, DATABASE_URL or DJANGO_SETTINGS_MODULE: its own
SQLite and in-process cache); the printed demo key and the port replace `askp_...` and `8000`
in the blocks. Each block runs in its own `bash -euo pipefail`; exported variables carry over
to the next block. curl runs with `--fail-with-body` (a ~/.curlrc in the blocks' own HOME), so
an HTTP error fails its block. Which blocks run and what they must print: tests/docs/readme_blocks.py.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.docs.readme_blocks import shell_blocks

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
KEY_LINE = re.compile(r"demo platform API key \(all scopes\): (askp_\S+)")
# Variables bash sets by itself: not part of what one block hands to the next.
SHELL_OWN = {"_", "PWD", "OLDPWD", "SHLVL"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        source = ROOT / rel
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    stamps = [".make-install", ".make-install-dev"]
    missing = [name for name in [".venv", *stamps] if not (ROOT / name).exists()]
    assert not missing, f"run `make install-dev` first (missing: {missing})"
    (dest / ".venv").symlink_to(ROOT / ".venv")
    if (ROOT / ".tools").exists():
        (dest / ".tools").symlink_to(ROOT / ".tools")
    for name in stamps:
        # Newer than the copied pyproject.toml and constraints.txt: make must not reinstall
        # into the shared venv (that would point its editable install at this copy).
        (dest / name).touch()


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    """What a newcomer's shell holds: nothing of this test run's settings."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **extra}


def _stop(proc: subprocess.Popen) -> None:
    """Stop make run and everything under it (its own session, started by this test)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fresh_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("first-hour")
    clone, home = base / "askpro", base / "home"
    clone.mkdir()
    home.mkdir()
    (home / ".curlrc").write_text("fail-with-body\nshow-error\n")
    _copy_checkout(clone)
    port = _free_port()
    log_path = base / "make-run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=_clean_env(home, PORT=str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        key = None
        deadline = time.monotonic() + 300
        while True:
            output = log_path.read_text()
            assert proc.poll() is None, f"make run ended (rc {proc.returncode}):\n{output[-3000:]}"
            assert time.monotonic() < deadline, f"make run did not serve within 300 s:\n{output[-3000:]}"
            found = KEY_LINE.search(output)
            key = found.group(1) if found else None
            if key:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/mcp/health", timeout=2)
                    break
                except urllib.error.HTTPError:
                    break  # it answers (401 without a key)
                except OSError:
                    pass
            time.sleep(0.5)
        assert f"export ASKPRO_KEY={key}" in log_path.read_text()  # the line README.md asks for
        yield {"clone": clone, "home": home, "port": port, "key": key, "log": log_path}
    finally:
        _stop(proc)


def _run(setup: dict, text: str, env: dict[str, str], state: Path) -> subprocess.CompletedProcess:
    text = text.replace("askp_...", setup["key"])
    text = re.sub(r"(127\.0\.0\.1|localhost):8000\b", rf"\g<1>:{setup['port']}", text)
    script = state.with_suffix(".sh")
    script.write_text(f'{text}\nenv -0 > "{state}"\n')
    return subprocess.run(
        ["bash", "-euo", "pipefail", str(script)],
        cwd=setup["clone"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_it_runs_every_shell_block_of_the_readme_after_make_run(fresh_setup, tmp_path):
    blocks = shell_blocks(README)
    runnable = [block for block in blocks if block.skip is None]
    assert len(runnable) >= 4, "the README test would prove little: most blocks are skipped"
    env = _clean_env(fresh_setup["home"])
    for number, block in enumerate(runnable):
        result = _run(fresh_setup, block.text, env, tmp_path / f"block-{number}.env")
        where = f"README.md:{block.line}\n{block.text}\n--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-2000:]}"
        assert result.returncode == 0, where
        output = result.stdout + result.stderr
        assert "Traceback" not in output, where
        assert not re.search(r'"success":\s*false', result.stdout), where
        for text in block.expect:
            assert text in output, f"expected {text!r}\n{where}"
        state = (tmp_path / f"block-{number}.env").read_text().split("\0")
        env = {k: v for k, _, v in (item.partition("=") for item in state if item) if k not in SHELL_OWN}
    server_log = fresh_setup["log"].read_text()
    assert "Traceback" not in server_log, server_log[-3000:]


def test_it_runs_the_sdk_example_in_the_2025_protocol_era_too(fresh_setup):
    result = subprocess.run(
        [
            ".venv/bin/python",
            "docs/examples/mcp_client.py",
            "--url",
            f"http://127.0.0.1:{fresh_setup['port']}/mcp",
            "--mode",
            "legacy",
        ],
        cwd=fresh_setup["clone"],
        env=_clean_env(fresh_setup["home"], ASKPRO_KEY=fresh_setup["key"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "protocol 2025-11-25" in result.stdout
    assert re.search(r'database_get_call_stats: \{"days": 7, "total": [1-9]', result.stdout), result.stdout
    assert "is_error=True: validation_error: days:" in result.stdout


def test_it_keeps_the_dev_env_file_away_from_the_production_entry_points(fresh_setup):
    """make run wrote var/dev.env (DEBUG=1); only manage.py reads it."""
    clone = fresh_setup["clone"]
    assert "DEBUG=1" in (clone / "var" / "dev.env").read_text().splitlines()
    for module in ("askpro.wsgi", "askpro.asgi"):
        result = subprocess.run(
            [".venv/bin/python", "-c", f"import {module}"],
            cwd=clone,
            env=_clean_env(fresh_setup["home"]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0, module
        assert "SECRET_KEY: required when DEBUG is off" in result.stderr, (module, result.stderr[-1000:])
