"""Run every benchmark module under tests/bench (bench_*.py) one after another."""

import importlib
import pkgutil
import sys

import tests.bench as package

for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_")):
    print(f"\n######## {module} ########", flush=True)
    sys.argv = [module]
    importlib.import_module(f"tests.bench.{module}").main()
