"""Cal.com case for bench_upstream: test_connection (GET /v2/me) against a live CalcomSandbox."""

from __future__ import annotations

import requests


class CalcomCase:
    service = "calcom"
    operation = "test_connection"
    params: dict = {}

    def setup(self, tenant) -> None:
        from django.conf import settings

        from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox

        self.sandbox = CalcomSandbox().start()
        self.sandbox.rate_limit = 10**9  # measure overhead, not Cal.com's limit
        settings.CALCOM_BASE_URL = self.sandbox.url
        settings.CALCOM_API_KEY = DEMO_API_KEY
        tenant.calcom_api_key = ""
        tenant.save(update_fields=["calcom_api_key"])
        from mcp_servers.calcom.client import CalcomClient

        self.client = CalcomClient(base_url=self.sandbox.url, api_key=DEMO_API_KEY)

    def direct(self, pooled: bool) -> None:
        if pooled:
            self.client.me()
            return
        from mcp_servers.calcom.client import CalcomClient

        client = CalcomClient(base_url=self.sandbox.url, api_key="cal_test_sandbox_key")
        client.session = requests.Session()  # a new TCP connection for this one call
        try:
            client.me()
        finally:
            client.session.close()

    def teardown(self) -> None:
        self.sandbox.stop()


CASE = CalcomCase()
