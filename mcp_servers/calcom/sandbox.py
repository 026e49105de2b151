"""A stateful fake of the Cal.com API v2 (see shared reference upstream-apis.md §1).

It follows the contract where a client could notice: `Authorization: Bearer cal_…`,
`cal-api-version` per endpoint group (missing on bookings routes -> 400, so a client that
forgets it fails here as it would hit the legacy controller upstream), the success envelope
`{"status":"success","data":…}`, NestJS error bodies, offset pagination, per-key rate
limits with the X-RateLimit-*-Default headers, slots computed from a weekly schedule, and
bookings that can be created, listed, cancelled and rescheduled. It also signs and sends
webhooks exactly as Cal.com does (X-Cal-Signature-256, hex HMAC-SHA256 of the raw body).

Unverified choices (the reference does not say): booking a slot that is taken answers
409 ConflictException; a 429 also carries Retry-After.

The fake is composed here from its parts: the state and the queries the routes share
(sandbox_state.py), the front door every route goes through (sandbox_api.py), the routes by
resource (sandbox_event_types.py, sandbox_bookings.py) and webhook sending
(sandbox_webhooks.py).
"""

from __future__ import annotations

from .sandbox_bookings import BookingRoutes
from .sandbox_event_types import EventTypeRoutes
from .sandbox_state import DEMO_API_KEY, DEMO_MAPPED_EVENT_TYPES
from .sandbox_webhooks import CalcomWebhooks, sign_webhook

__all__ = ["DEMO_API_KEY", "DEMO_MAPPED_EVENT_TYPES", "SANDBOX_CLASS", "CalcomSandbox", "sign_webhook"]


class CalcomSandbox(EventTypeRoutes, BookingRoutes, CalcomWebhooks):
    """Cal.com v2, in memory. One account per API key; each account owns event types,
    a weekly schedule (Mon–Fri 09:00–17:00 in its time zone by default) and bookings."""

    service = "calcom"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: list[str] | None = None,
        rate_limit: int = 120,
        rate_window: float = 60.0,
        demo: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._seed = ([DEMO_API_KEY] if api_keys is None else list(api_keys), demo)
        self.reset()

    def reset(self) -> None:
        """Back to the initial state: seeded accounts only, no bookings, faults or request log."""
        with self.lock:
            self.faults.clear()
            self.request_log.clear()
            self.accounts = {}
            self.event_types = {}
            self.schedules = {}
            self.bookings = {}
            self.webhook_deliveries = []
            self._rate = {}
            self._next_user = 1
            self._next_event_type = 1001
            self._next_booking = 5001
            keys, demo = self._seed
            for key in keys:
                self.add_account(key, demo=demo)
            if demo and DEMO_API_KEY in keys:
                # The event types `manage.py seed_demo` maps its branches to (1000 + 10·tenant +
                # branch), so that SANDBOX=1 demo tenants can book on the shared demo account.
                for event_type_id in DEMO_MAPPED_EVENT_TYPES:
                    if event_type_id not in self.event_types:
                        self.add_event_type(
                            DEMO_API_KEY,
                            title=f"Appointment {event_type_id}",
                            slug=f"appointment-{event_type_id}",
                            length=30,
                            event_type_id=event_type_id,
                        )

    def describe(self) -> str:
        return f"demo key {DEMO_API_KEY}, {len(self.event_types)} event types, Mon-Fri 09:00-17:00"


SANDBOX_CLASS = CalcomSandbox
