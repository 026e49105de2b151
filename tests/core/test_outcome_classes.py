"""Errors counted honestly: every answer lands in exactly one outcome class, the pages show
service failures as the failure rate with caller errors and not_configured beside it, and the
ImprovementEngine recommends what fixes each class (issue 11, section 5).

The rows come from real calls through the pipeline (and, for Cal.com, its sandbox)."""

from __future__ import annotations

import pytest
from django.db.models import Sum
from django.test import Client, override_settings
from django.urls import reverse

from dashboard.engine import ImprovementEngine
from dashboard.engine.analyzers.metrics import CallerErrorRate, ErrorRateRise, NotConfiguredCalls
from dashboard.models import Recommendation
from mcp_core.api_keys import api_key_authenticate
from mcp_core.contracts import (
    BREAKER_FAILURE_CODES,
    OUTCOME_CLASS_FOR_ERROR,
    ErrorCode,
    OutcomeClass,
    outcome_class,
)
from mcp_core.models import MetricRollup
from mcp_core.pipeline import call_operation
from mcp_core.recorder import flush_recorder
from mcp_servers.calcom.sandbox import DEMO_API_KEY, CalcomSandbox

pytestmark = pytest.mark.django_db

COUNTS = ("calls", "caller_errors", "not_configured", "service_failures")
ANALYZERS = [ErrorRateRise, NotConfiguredCalls, CallerErrorRate]


def counted(service: str, **filters) -> tuple[int, ...]:
    totals = MetricRollup.objects.filter(service=service, **filters).aggregate(
        **{name: Sum(name) for name in COUNTS}
    )
    return tuple(totals[name] or 0 for name in COUNTS)


def card(page: str, service: str) -> str:
    start = page.index(f'data-service="{service}"')
    return page[start : page.index("</article>", start)]


def figure(html: str, name: str) -> str:
    start = html.index(f'data-testid="{name}">') + len(f'data-testid="{name}">')
    return html[start : html.index("</dd>", start)]


def test_it_puts_every_error_code_in_exactly_one_class():
    assert set(OUTCOME_CLASS_FOR_ERROR) == set(ErrorCode)
    assert outcome_class(None) is OutcomeClass.SUCCESS and outcome_class("") is OutcomeClass.SUCCESS
    caller = ["validation_error", "not_found", "unauthorized", "forbidden", "conflict", "rate_limited"]
    assert {outcome_class(code) for code in caller} == {OutcomeClass.CALLER_ERROR}
    assert outcome_class("not_configured") is OutcomeClass.NOT_CONFIGURED
    failures = ["upstream_error", "timeout", "internal_error", "circuit_open"]
    assert {outcome_class(code) for code in failures} == {OutcomeClass.SERVICE_FAILURE}
    # An unknown code is never hidden among the caller's mistakes.
    assert outcome_class("brand_new_code") is OutcomeClass.SERVICE_FAILURE
    # A breaker's own refusal never feeds a breaker.
    assert ErrorCode.CIRCUIT_OPEN not in BREAKER_FAILURE_CODES
    assert {ErrorCode.UPSTREAM_ERROR, ErrorCode.TIMEOUT, ErrorCode.INTERNAL_ERROR} == BREAKER_FAILURE_CODES


@pytest.fixture(scope="module")
def calcom_sandbox():
    server = CalcomSandbox().start()
    yield server
    server.stop()


@pytest.fixture
def calcom_for_alice_only(calcom_sandbox, settings, alice, bob):
    """Cal.com with no platform key: Alice has her own key (the sandbox's account), Bob none."""
    calcom_sandbox.reset()
    calcom_sandbox.add_event_type(
        DEMO_API_KEY, title="Consultation", slug="consult", length=30, event_type_id=42
    )
    settings.CALCOM_BASE_URL = calcom_sandbox.url
    settings.CALCOM_API_KEY = None
    alice.calcom_api_key = DEMO_API_KEY
    alice.save(update_fields=["calcom_api_key"])
    return calcom_sandbox


def test_it_does_not_call_a_service_answering_not_configured_half_the_time_failing(
    calcom_for_alice_only, alice_key, bob_key, admin_client
):
    """The issue's scenario: 50 % not_configured showed as a 50 % error rate and produced a
    recommendation about upstream errors."""
    alice, bob = api_key_authenticate(alice_key), api_key_authenticate(bob_key)
    for _ in range(20):
        assert call_operation("calcom", "get_event_types", {}, principal=alice).success
        refused = call_operation("calcom", "get_event_types", {}, principal=bob)
        assert refused.error["code"] == "not_configured"
    assert counted("calcom") == (40, 0, 20, 0)
    assert counted("calcom", tenant_id=bob.tenant_id) == (20, 0, 20, 0)

    data = admin_client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    figures = {s["service"]: s for s in data["services"]}["calcom"]
    assert (figures["service_failures"], figures["service_failure_rate"]) == (0, 0.0)
    assert (figures["not_configured"], figures["not_configured_rate"]) == (20, 0.5)
    assert (figures["successes"], data["totals"]["service_failure_pct"]) == (20, 0.0)

    page = card(admin_client.get(reverse("admin:dashboard")).content.decode(), "calcom")
    assert figure(page, "failure-rate") == "0.0 % (0 of 40)"
    assert figure(page, "not-configured").startswith("50.0 % (20 of 40)")
    assert figure(page, "last-failure") == "none"

    ImprovementEngine([cls() for cls in ANALYZERS]).run(trigger="test")
    recs = list(Recommendation.objects.all())
    assert [(r.analyzer, r.fingerprint) for r in recs] == [("not_configured_calls", "calcom")]
    rec = recs[0]
    assert "bob-practice" in rec.suggested_action and "alice-salon" not in rec.suggested_action
    assert rec.evidence["not_configured"] == 20 and rec.evidence["service_configured"] is True
    assert "upstream" not in (rec.title + rec.suggested_action).lower()


def test_it_recommends_configuring_a_service_without_any_credentials(platform_key, settings):
    settings.SENTRY_AUTH_TOKEN = None
    platform = api_key_authenticate(platform_key)
    for _ in range(6):
        response = call_operation("sentry", "list_issues", {}, principal=platform)
        assert response.error["code"] == "not_configured"
    assert counted("sentry") == (6, 0, 6, 0)
    ImprovementEngine([cls() for cls in ANALYZERS]).run(trigger="test")
    rec = Recommendation.objects.get()
    assert (rec.analyzer, rec.fingerprint, rec.severity) == ("not_configured_calls", "sentry", "medium")
    assert rec.suggested_action.startswith("Configure credentials for sentry")
    assert "remove it from MCP_SERVERS" in rec.suggested_action


@override_settings(MCP_AUDIT_FLUSH_MS=600_000)  # the API's read-only calls go through the batch statement
def test_it_shows_refused_calls_as_caller_errors_on_the_pages_and_in_the_engine(
    alice, key_factory, admin_client
):
    narrow = key_factory(tenant=alice, scopes=["calcom:read"], name="narrow")
    full = key_factory(tenant=alice, scopes=["*"], name="full")
    api = Client()

    def post(key: str, params: dict) -> int:
        return api.post(
            "/api/v1/mcp/call",
            {"service": "database", "operation": "search", "params": params},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        ).status_code

    assert {post(narrow, {"query": "salon"}) for _ in range(15)} == {403}
    assert {post(full, {"query": "salon", "bogus": 1}) for _ in range(10)} == {400}
    assert post("askp_not_a_real_key_at_all", {"query": "salon"}) == 401
    assert {post(full, {"query": "salon"}) for _ in range(5)} == {200}
    flush_recorder()

    assert counted("database", operation="search") == (31, 26, 0, 0)
    # Refused before the tenant was resolved, still counted for the key's tenant.
    assert counted("database", operation="search", tenant_id=alice.pk) == (30, 25, 0, 0)

    data = admin_client.get(reverse("admin:monitoring_data") + "?window=1h").json()
    figures = {s["service"]: s for s in data["services"]}["database"]
    assert (figures["caller_errors"], figures["caller_error_pct"], figures["service_failures"]) == (
        26,
        83.9,
        0,
    )
    legend = {entry["key"]: entry["codes"] for entry in data["legend"]}
    assert "forbidden" in legend["caller_errors"] and "circuit_open" in legend["service_failures"]

    page = card(admin_client.get(reverse("admin:dashboard")).content.decode(), "database")
    assert figure(page, "caller-errors") == "83.9 % (26 of 31)"
    assert figure(page, "failure-rate") == "0.0 % (0 of 31)"

    ImprovementEngine([cls() for cls in ANALYZERS]).run(trigger="test")
    rec = Recommendation.objects.get()
    assert (rec.analyzer, rec.fingerprint) == ("caller_errors", "database.search")
    assert rec.evidence["by_code"] == {"forbidden": 15, "validation_error": 10, "unauthorized": 1}
    top = rec.evidence["by_principal"][0]
    assert top["errors"] == 15 and top["principal"] == api_key_authenticate(narrow).name
    assert "scope" in rec.suggested_action and "mostly forbidden" in rec.title
