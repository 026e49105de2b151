"""Run the benchmark modules under tests/bench (bench_*.py) one after another: all of them, or
the ones named (`python -m tests.bench bench_admin bench_core`)."""

import importlib
import pkgutil
import sys

import tests.bench as package

available = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("bench_"))
chosen = sys.argv[1:] or available
unknown = sorted(set(chosen) - set(available))
if unknown:
    sys.exit(f"unknown bench module(s): {', '.join(unknown)}; available: {', '.join(available)}")
for module in chosen:
    print(f"\n######## {module} ########", flush=True)
    sys.argv = [module]
    importlib.import_module(f"tests.bench.{module}").main()
