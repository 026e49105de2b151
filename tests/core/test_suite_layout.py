"""`make test` runs every test the repository holds: pytest collects only under `testpaths`, so a
new top-level app whose tests live beside it (notifications/tests) must be listed there."""

from __future__ import annotations

import subprocess
import tomllib

from tests.bench.harness import ROOT


def test_it_collects_every_test_module_the_repository_tracks():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    testpaths = config["tool"]["pytest"]["ini_options"]["testpaths"]
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*test_*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    modules = [path for path in tracked if path.rsplit("/", 1)[-1].startswith("test_")]
    assert len(modules) > 100
    outside = [path for path in modules if not any(path.startswith(f"{top}/") for top in testpaths)]
    assert outside == []
    # and every package pip installs is among them (its tests, if any, are collected)
    packages = [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert set(packages) <= set(testpaths)
