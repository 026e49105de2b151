"""A stateful fake of the Retell AI API (reference/upstream-apis.md §2) on 127.0.0.1.

It speaks both generations of the list endpoints (the legacy arrays and the cursor
envelopes introduced in May 2026), Bearer auth with Retell's error body
`{"status": <code>, "message": ...}`, create-phone-call with a concurrency limit (Retell's
documented lever, answered with 429 and Retry-After), the Retell LLM that holds an agent's
prompt, and correctly signed webhooks (`x-retell-signature: v=<ms>,d=<hex>`).

The fake is composed here from its parts: the workspace state (sandbox_state.py), the front
door every route goes through (sandbox_api.py), the routes by resource (sandbox_agents.py,
sandbox_calls.py) and webhook signing and sending (sandbox_webhooks.py).
"""

from __future__ import annotations

import threading
from typing import ClassVar

from .sandbox_agents import AgentRoutes
from .sandbox_calls import CallRoutes
from .sandbox_state import DEMO_API_KEY, WEBHOOK_EVENTS, now_ms
from .sandbox_webhooks import SIGNATURE_HEADER, RetellWebhooks, sign_webhook, webhook_body, webhook_payload

__all__ = [
    "DEMO_API_KEY",
    "SANDBOX_CLASS",
    "SIGNATURE_HEADER",
    "WEBHOOK_EVENTS",
    "RetellSandbox",
    "sign_webhook",
    "webhook_body",
    "webhook_payload",
]


class RetellSandbox(AgentRoutes, CallRoutes, RetellWebhooks):
    """In-memory Retell workspace: agents, Retell LLMs, phone numbers and calls.

    `api_keys` are the keys it accepts (the demo key by default). `legacy_only=True`
    answers only the pre-May-2026 list routes, like an older deployment or proxy would.
    `concurrency_limit` caps calls in `registered`/`ongoing`, as Retell's plan limit does.
    `seed=True` (the default, for `manage.py run_sandbox`) loads the demo workspace; tests
    pass `seed=False` and add what they need.
    """

    service: ClassVar[str] = "retell"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: list[str] | None = None,
        seed: bool = True,
        legacy_only: bool = False,
        concurrency_limit: int = 20,
    ) -> None:
        super().__init__(host, port)
        self.api_keys = set(api_keys or [DEMO_API_KEY])
        self.legacy_only = legacy_only
        self.concurrency_limit = concurrency_limit
        self.agents = {}
        self.llms = {}
        self.phone_numbers = {}
        self.calls = {}
        self.webhook_log = []
        self._state_lock = threading.RLock()
        if seed:
            self.seed_demo()

    def seed_demo(self) -> None:
        """The demo workspace matching `manage.py seed_demo` (agent ids and branch numbers)."""
        prompt = (
            "Begrüßung: Begrüße den Anrufer freundlich im Namen des Salons. Service: Beantworte Fragen "
            "zu Leistungen und Preisen. Termin: Buche, verschiebe oder storniere Termine über Cal.com."
        )
        branches = {
            "agent_demo_1": [("agent_demo_1_1", "+493012345601"), ("agent_demo_1_2", "+498912345602")],
            "agent_demo_2": [("agent_demo_2_1", "+494012345603"), ("agent_demo_2_2", "+494012345604")],
        }
        for company_agent, branch_agents in branches.items():
            self.add_agent(company_agent, agent_name=f"{company_agent} receptionist", prompt=prompt)
            for index, (agent_id, number) in enumerate(branch_agents):
                self.add_agent(agent_id, agent_name=f"{agent_id} branch", prompt=prompt)
                self.add_phone_number(number, inbound_agent_id=agent_id, nickname=agent_id)
                for n in range(3):
                    self.add_call(
                        agent_id=agent_id,
                        from_number=f"+49171000{index}{n:03d}",
                        to_number=number,
                        start_timestamp=now_ms() - (n + 1) * 3_600_000,
                    )

    def describe(self) -> str:
        with self._state_lock:
            return (
                f"demo key {DEMO_API_KEY}, {len(self.agents)} agents, "
                f"{len(self.phone_numbers)} phone numbers, {len(self.calls)} calls"
            )


# The discovery convention of `manage.py run_sandbox` (see /work/sandbox-convention.md).
SANDBOX_CLASS = RetellSandbox
