"""The queue server refuses tenant keys and says when the broker is missing or unreachable."""

from __future__ import annotations

import time

import pytest

from tests.celery_worker import forget_broker_connections

from .conftest import call_server

pytestmark = pytest.mark.slow


@pytest.mark.django_db
def test_it_refuses_tenant_keys(alice_key):
    response = call_server(alice_key, "get_failed_tasks")
    assert response.error["code"] == "forbidden"


@pytest.mark.django_db
def test_it_says_so_without_a_broker(platform_key):
    response = call_server(platform_key, "get_overview")
    assert response.error["code"] == "not_configured" and "CELERY_BROKER_URL" in response.error["message"]


@pytest.mark.django_db
def test_it_answers_an_unreachable_broker_with_an_upstream_error_within_the_deadline(platform_key):
    from askpro.celery import app

    old = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:1/0")  # nothing listens
    try:
        for operation in ("get_overview", "get_workers"):
            started = time.monotonic()
            response = call_server(platform_key, operation)
            assert response.error["code"] == "upstream_error", operation
            assert "unreachable" in response.error["message"]
            assert time.monotonic() - started < 5
    finally:
        app.conf.update(**old)
        forget_broker_connections()
