"""Webhook tests that cross servers: a provider's handler reached through /webhooks/<provider>,
with records of other servers (a Retell call booked through the Cal.com server) and the
providers' sandboxes delivering over HTTP. They share the webhooks app's helpers and its
per-test platform secrets."""

from mcp_servers.webhooks.tests.conftest import (  # noqa: F401 - helpers and the autouse fixture
    CALCOM_SECRET,
    RETELL_KEY,
    STRIPE_SECRET,
    calcom_body,
    post,
    retell_body,
    retell_call,
    signed,
    stripe_body,
    webhook_secrets,
)
