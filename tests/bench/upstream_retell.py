"""Retell case for bench_upstream: test_connection (POST /v2/list-agents) against a live RetellSandbox."""

from __future__ import annotations

import requests


class RetellCase:
    service = "retell"
    operation = "test_connection"
    params: dict = {}

    def setup(self, tenant) -> None:
        from django.conf import settings

        from mcp_servers.retell.client import RetellClient
        from mcp_servers.retell.sandbox import DEMO_API_KEY, RetellSandbox

        self.sandbox = RetellSandbox().start()  # the demo workspace: agent_demo_1 is the tenant's
        settings.RETELL_BASE_URL = self.sandbox.url
        settings.RETELL_API_KEY = DEMO_API_KEY
        tenant.retell_api_key = ""
        tenant.save(update_fields=["retell_api_key"])
        if tenant.plan is not None:  # measure overhead, not the plan's rate limit refusing
            tenant.plan.requests_per_minute = 10**7
            tenant.plan.max_concurrent_calls = 10**4
            tenant.plan.save(update_fields=["requests_per_minute", "max_concurrent_calls"])
        self.key = DEMO_API_KEY
        self.client = RetellClient(base_url=self.sandbox.url, api_key=DEMO_API_KEY)

    def direct(self, pooled: bool) -> None:
        if pooled:
            self.client.list_agents(None)
            return
        from mcp_servers.retell.client import RetellClient

        client = RetellClient(base_url=self.sandbox.url, api_key=self.key)
        client.session = requests.Session()  # a new TCP connection for this one call
        try:
            client.list_agents(None)
        finally:
            client.session.close()

    def teardown(self) -> None:
        self.sandbox.stop()


CASE = RetellCase()
