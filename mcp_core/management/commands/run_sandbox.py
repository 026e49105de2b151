"""Start every upstream sandbox on its local port and keep them running until Ctrl-C/SIGTERM.

Discovery convention (also in docs/servers.md): a module `mcp_servers.<svc>.sandbox` exposing
`SANDBOX_CLASS` (a SandboxServer subclass, or the name of one in that module) whose
`service` is the key in settings.SANDBOX_PORTS. It is built as `SANDBOX_CLASS(host=, port=)`
and must accept the demo credentials settings use when SANDBOX=1.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mcp_core.sandbox import SandboxServer


def discover_sandboxes() -> dict[str, type[SandboxServer]]:
    """service name -> sandbox class, for every mcp_servers.<svc>.sandbox with SANDBOX_CLASS."""
    import mcp_servers

    found: dict[str, type[SandboxServer]] = {}
    for info in sorted(pkgutil.iter_modules(mcp_servers.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module_name = f"mcp_servers.{info.name}.sandbox"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)  # an error here is a bug: let it show
        declared = getattr(module, "SANDBOX_CLASS", None)
        if declared is None:
            continue
        cls = getattr(module, declared) if isinstance(declared, str) else declared
        if not (isinstance(cls, type) and issubclass(cls, SandboxServer)):
            raise CommandError(f"{module_name}.SANDBOX_CLASS is not a SandboxServer subclass")
        found[cls.service or info.name] = cls
    return found


class Command(BaseCommand):
    help = "Start the local sandboxes of the upstream APIs (Cal.com, Retell, Stripe, ...) on settings.SANDBOX_PORTS."

    def add_arguments(self, parser):
        parser.add_argument("--only", default="", help="Comma-separated services to start (default: all)")
        parser.add_argument(
            "--list", action="store_true", help="Print the sandboxes that would start, then exit"
        )

    def handle(self, *args, only: str, list: bool, **options):
        classes = discover_sandboxes()
        wanted = [s.strip() for s in only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in classes]
        if unknown:
            raise CommandError(
                f"--only: no sandbox for {', '.join(unknown)} (available: {', '.join(classes)})"
            )
        if wanted:
            classes = {name: cls for name, cls in classes.items() if name in wanted}
        if not classes:
            raise CommandError("No sandboxes found (mcp_servers.<svc>.sandbox with SANDBOX_CLASS)")
        host = settings.SANDBOX_HOST
        if list:
            for name, cls in classes.items():
                port = settings.SANDBOX_PORTS.get(name, "free port")
                self.stdout.write(f"{name}: {cls.__module__}.{cls.__name__} on {host}:{port}")
            return

        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        started: list[SandboxServer] = []
        try:
            for name, cls in classes.items():
                port = settings.SANDBOX_PORTS.get(name)
                if port is None:
                    self.stderr.write(f"warning: {name} has no port in SANDBOX_PORTS; using a free port")
                sandbox = cls(host=host, port=port or 0)
                try:
                    sandbox.start()
                except OSError as exc:
                    raise CommandError(f"{name}: cannot listen on {host}:{port} ({exc.strerror})") from None
                started.append(sandbox)
                extra = sandbox.describe() if hasattr(sandbox, "describe") else ""
                self.stdout.write(f"{name} -> {sandbox.url}" + (f"  ({extra})" if extra else ""))
            self.stdout.write("Sandboxes running; Ctrl-C or SIGTERM stops them.")
            self.stdout.flush()
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for sandbox in reversed(started):
                sandbox.stop()
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Sandboxes stopped.")
