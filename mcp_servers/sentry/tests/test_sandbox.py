"""The Sentry sandbox keeps Sentry's contract: token errors, rate-limit headers, Link cursors, 429."""

from __future__ import annotations

import requests

from mcp_servers.sentry.sandbox import DEMO_TOKEN


def test_it_refuses_bad_tokens_like_sentry(sandbox):
    response = requests.get(f"{sandbox.url}/api/0/organizations/askpro/issues/", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token"}


def test_it_sends_rate_limit_headers_and_link_cursors(sandbox):
    sandbox.reset_rate_limit()
    response = requests.get(
        f"{sandbox.url}/api/0/organizations/askpro/issues/",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 200
    assert "X-Sentry-Rate-Limit-Remaining" in response.headers
    assert 'rel="next"; results="true"' in response.headers["Link"]
    assert 'rel="previous"; results="false"' in response.headers["Link"]


def test_it_answers_429_when_the_limit_is_spent(sandbox):
    sandbox.reset_rate_limit(0)
    response = requests.get(
        f"{sandbox.url}/api/0/organizations/askpro/issues/",
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    sandbox.reset_rate_limit()
