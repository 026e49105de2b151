"""The console form under hostile input (issue 11 §2): generated from the registry, every
operation's form posted with hostile values in every field re-renders with field errors (or,
for a body over the limit, answers the JSON 413), never a 500; values the form cannot judge
(dates, numbers beyond a column) come back from the orchestrator as an error on that field."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from dashboard.forms import ConsoleForm
from mcp_core.models import AuditEntry
from mcp_core.registry import get_registry

pytestmark = pytest.mark.django_db

OPERATIONS = [op for op in get_registry().operations()]
DEPTH = settings.REQUEST_MAX_JSON_DEPTH
HOSTILE = {
    "NUL": "a\x00b",
    "absurd number": "9" * 5000,
    "not finite": "1e400",
    "deep JSON": "[" * 3000 + "]" * 3000,  # json.loads recursed into a RecursionError
    "year 1": "0001-01-01",
    "long text": "x" * 70_000,
}


def _url(op) -> str:
    return reverse("admin:console") + f"?op={op.service}.{op.name}"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.tool_name)
def test_it_rerenders_the_console_form_with_field_errors_for_hostile_values(op, operator_client, alice):
    fields = [name for name in ConsoleForm(op=op).fields if name.startswith("p_")]
    for label, value in HOSTILE.items():
        data = {"op": f"{op.service}.{op.name}", "tenant": alice.slug, **dict.fromkeys(fields, value)}
        response = operator_client.post(_url(op), data)
        assert response.status_code == 200, (label, response.status_code)
        form = response.context["form"]
        # Refused on the fields, or (a value every field may take, e.g. "1e400" as a booking
        # uid) called and answered; either way the page, never a 500.
        assert form.errors or response.context["response"], (label, "neither refused nor called")
        for name, errors in form.errors.items():
            assert name in form.fields or name == "__all__", (label, name)
            assert all(str(e) for e in errors), (label, name)


def test_it_shows_the_orchestrators_refusal_on_the_field_it_names(operator_client, alice):
    """year 1 is a well-formed date the form cannot judge: the pipeline refuses it, and the
    form comes back with the error on date_from, audited as one refused console call."""
    op = get_registry().get_operation("calcom", "check_availability")
    data = {
        "op": "calcom.check_availability",
        "tenant": alice.slug,
        "p_event_type_id": "42",
        "p_date_from": "0001-01-01",
    }
    response = operator_client.post(_url(op), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["p_date_from"], errors
    assert "1900" in errors["p_date_from"][0]
    entry = AuditEntry.objects.get(operation="check_availability")
    assert (entry.transport, entry.error_code) == ("console", "validation_error")


def test_it_refuses_deep_json_in_a_json_field_as_a_field_error(operator_client, alice):
    op = get_registry().get_operation("calcom", "create_booking")
    form = ConsoleForm(op=op)
    json_fields = [name for name, field in form.fields.items() if "JSON" in str(field.help_text)]
    assert json_fields, "create_booking has a JSON field (metadata)"
    data = {
        "op": "calcom.create_booking",
        "tenant": alice.slug,
        "p_event_type_id": "42",
        "p_start": "2030-01-15T10:00:00Z",
        "p_name": "Jane",
        "p_email": "jane@example.com",
        json_fields[0]: "[" * 3000 + "]" * 3000,
    }
    response = operator_client.post(_url(op), data)
    assert response.status_code == 200
    assert f"deeper than {DEPTH}" in str(response.context["form"].errors), response.context["form"].errors


def test_it_answers_a_console_post_over_the_size_limit_with_the_json_413(operator_client, alice):
    op = get_registry().get_operation("database", "search")
    data = {
        "op": "database.search",
        "tenant": alice.slug,
        "p_query": "q" * (settings.REQUEST_MAX_BODY_BYTES + 1),
    }
    response = operator_client.post(_url(op), data)
    assert response.status_code == 413
    assert response.json()["limit"] == settings.REQUEST_MAX_BODY_BYTES
    assert not AuditEntry.objects.exists()
