"""Stripe case for bench_upstream: get_subscription (GET /v1/subscriptions?customer=..&limit=1)
through the official `stripe` library against a live StripeSandbox with its demo account."""

from __future__ import annotations

import requests


class StripeCase:
    service = "stripe"
    operation = "get_subscription"
    params: dict = {}

    def setup(self, tenant) -> None:
        from django.conf import settings

        from mcp_servers.stripe.client import StripeCredentials, stripe_client
        from mcp_servers.stripe.sandbox import DEMO_API_KEY, StripeSandbox

        # The demo account holds cus_demo1 (the demo tenant's customer) and its subscription.
        # No sandbox rate limit: this measures overhead, not Stripe's 25-100 requests/s.
        self.sandbox = StripeSandbox(rate_limit_per_second=None).start()
        settings.STRIPE_API_BASE = self.sandbox.url
        settings.STRIPE_SECRET_KEY = DEMO_API_KEY
        tenant.stripe_secret_key = ""
        tenant.stripe_customer_id = "cus_demo1"
        tenant.stripe_subscription_id = ""
        tenant.save(update_fields=["stripe_secret_key", "stripe_customer_id", "stripe_subscription_id"])
        self.creds = StripeCredentials(DEMO_API_KEY, self.sandbox.url, "platform")
        self.client = stripe_client(self.creds)  # the same cached client the server uses
        self.query = {"customer": "cus_demo1", "limit": 1}

    def direct(self, pooled: bool) -> None:
        if pooled:
            self.client.v1.subscriptions.list(params=self.query)
            return
        import stripe

        from mcp_servers.stripe.client import MAX_NETWORK_RETRIES, DeadlineRequestsClient

        session = requests.Session()  # a new TCP connection for this one call
        try:
            client = stripe.StripeClient(
                self.creds.api_key,
                base_addresses={"api": self.creds.api_base},
                http_client=DeadlineRequestsClient(session),
                max_network_retries=MAX_NETWORK_RETRIES,
            )
            client.v1.subscriptions.list(params=self.query)
        finally:
            session.close()

    def teardown(self) -> None:
        self.sandbox.stop()


CASE = StripeCase()
