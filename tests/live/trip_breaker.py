"""Opens (or closes) a service's circuit breaker from a process of its own, through the real
breaker guard: `python -m tests.live.trip_breaker calcom [close]`. The live tests run it to raise
a breaker event the way any web process or worker would."""

import sys
from types import SimpleNamespace

import django

django.setup()

from mcp_core.breaker import CLOSED, BreakerGuard, breaker_reset, config_for  # noqa: E402
from mcp_core.registry import get_registry  # noqa: E402


def main(service: str, action: str) -> None:
    if action == "close":
        breaker_reset(service, user=SimpleNamespace(pk=None, get_username=lambda: "trip_breaker"))
        return
    op = next(o for o in get_registry().operations() if o.service == service and o.annotations.open_world)
    guard = BreakerGuard()
    # Failed calls until the window's threshold opens it (minimum_calls of them, all failing).
    for _ in range(config_for(service).minimum_calls):
        token = guard.enter(op, SimpleNamespace())
        if token is None or token[0] != CLOSED:
            break
        guard.exit(op, SimpleNamespace(), token, "upstream_error", 0.01)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "open")
