"""The inbound-call answer: resolved from the dialled number, cached, invalidated on change,
with a clear fallback for unknown numbers; verified like every Retell delivery."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from askpro.models import PhoneNumber, Service
from mcp_servers.retell.inbound import CACHE_PREFIX
from mcp_servers.webhooks.models import WebhookEvent

from .conftest import post, retell_body, signed


def _ask(client, to="+4930111111", frm="+4917000001", secret=None):
    body = retell_body(
        {
            "event": "call_inbound",
            "call_inbound": {
                "agent_id": "agent_default",
                "agent_version": 1,
                "from_number": frm,
                "to_number": to,
            },
        }
    )
    response = post(client, "retell", body, signed("retell", body, secret))
    return response.status_code, (json.loads(response.content) if response.status_code == 200 else None)


@pytest.fixture
def salon(alice):
    branch = alice.branches.get()
    branch.retell_agent_id = "agent_alice_main"
    branch.business_hours = {"mon": [["09:00", "18:00"]], "sat": [["10:00", "14:00"]]}
    branch.address, branch.city, branch.timezone = "Hauptstr. 1", "Berlin", "Europe/Berlin"
    branch.save()
    Service.objects.create(company=alice, name="Haircut", duration_minutes=45)
    return alice


@pytest.mark.django_db
def test_it_answers_with_the_agent_and_the_numbers_context(client, salon):
    status, answer = _ask(client)
    assert status == 200
    inbound = answer["call_inbound"]
    assert inbound["override_agent_id"] == "agent_alice_main"
    assert inbound["dynamic_variables"] == {
        "company_name": "Alice's Salon",
        "branch_name": "Main",
        "branch_address": "Hauptstr. 1, Berlin",
        "services": "Consultation, Haircut",
        "business_hours": "Mon 09:00-18:00; Tue closed; Wed closed; Thu closed; Fri closed; Sat 10:00-14:00; Sun closed",
        "timezone": "Europe/Berlin",
        "known_number": "true",
        "caller_number": "+4917000001",
    }
    assert all(isinstance(v, str) for v in inbound["dynamic_variables"].values())
    assert inbound["metadata"]["company_id"] == salon.pk
    assert WebhookEvent.objects.count() == 0, "answered synchronously, not queued"


@pytest.mark.django_db
def test_it_reads_one_cache_entry_and_no_database_on_the_warm_path(
    client, salon, django_assert_num_queries, monkeypatch
):
    _ask(client)  # warms the cache
    reads: list[str] = []
    original = cache.get

    def counting_get(key, *args, **kwargs):
        reads.append(key)
        return original(key, *args, **kwargs)

    monkeypatch.setattr(cache, "get", counting_get)
    with django_assert_num_queries(0):
        status, answer = _ask(client, frm="+4917000002")
    assert status == 200 and answer["call_inbound"]["dynamic_variables"]["caller_number"] == "+4917000002"
    assert reads == [CACHE_PREFIX + "+4930111111"]


@pytest.mark.django_db
def test_it_forgets_the_cached_answer_when_services_hours_or_numbers_change(
    client, salon, django_capture_on_commit_callbacks
):
    assert "Haircut" in _ask(client)[1]["call_inbound"]["dynamic_variables"]["services"]
    with django_capture_on_commit_callbacks(execute=True):
        Service.objects.filter(name="Haircut").get().delete()
    assert _ask(client)[1]["call_inbound"]["dynamic_variables"]["services"] == "Consultation"

    with django_capture_on_commit_callbacks(execute=True):
        branch = salon.branches.get()
        branch.business_hours = {"sun": [["12:00", "13:00"]]}
        branch.save()
    assert "Sun 12:00-13:00" in _ask(client)[1]["call_inbound"]["dynamic_variables"]["business_hours"]

    with django_capture_on_commit_callbacks(execute=True):
        phone = PhoneNumber.objects.get(number="+4930111111")
        phone.number = "+4930999999"
        phone.save()
        salon.branches.update(phone_number="+4930999999")
    assert _ask(client)[1]["call_inbound"]["dynamic_variables"]["known_number"] == "false"
    assert (
        _ask(client, to="+4930999999")[1]["call_inbound"]["dynamic_variables"]["company_name"]
        == "Alice's Salon"
    )


@pytest.mark.django_db
def test_it_falls_back_clearly_for_an_unknown_number(client, salon, settings):
    status, answer = _ask(client, to="+4988888888")
    assert status == 200
    assert answer == {
        "call_inbound": {
            "dynamic_variables": {
                "company_name": "AskPro",
                "caller_number": "+4917000001",
                "known_number": "false",
            },
            "metadata": {"unknown_number": "+4988888888"},
        }
    }
    settings.RETELL_DEFAULT_AGENT_ID = "agent_platform_default"
    assert _ask(client, to="+4988888888")[1]["call_inbound"]["override_agent_id"] == "agent_platform_default"
    # Adding the number makes it known at once (the negative entry is forgotten).
    PhoneNumber.objects.create(company=salon, number="+4988888888")
    assert _ask(client, to="+4988888888")[1]["call_inbound"]["dynamic_variables"]["known_number"] == "true"


@pytest.mark.django_db
def test_it_refuses_an_unsigned_or_forged_inbound_request(client, salon):
    assert _ask(client, secret="key_forged")[0] == 401


@pytest.mark.django_db
def test_it_accepts_an_inbound_request_signed_with_the_tenants_own_key(client, salon):
    salon.retell_api_key = "key_alice_own"
    salon.save()
    status, answer = _ask(client, secret="key_alice_own")
    assert status == 200 and answer["call_inbound"]["override_agent_id"] == "agent_alice_main"


@pytest.mark.django_db
def test_it_tells_the_agent_the_busy_time_of_today_for_tenants_that_have_some(client, salon, bob):
    """Busy time from outside the booking system (mcp_core.busy_time, e.g. Google Calendar)
    is read when the call comes in, only for tenants a source covers."""
    import datetime as dt

    from django.utils import timezone

    from mcp_core.busy_time import BusyQuery, busy_source, forget_source

    now = timezone.now()
    asked: list[BusyQuery] = []

    def covers(company_id: int) -> bool:
        return company_id == salon.pk

    @busy_source("test-busy", covers=covers)
    def busy(query: BusyQuery):
        asked.append(query)
        return [(now - dt.timedelta(minutes=5), now + dt.timedelta(minutes=25))]

    cache.clear()
    try:
        _, answer = _ask(client)
        _, other = _ask(client, to="+4940222222")
    finally:
        forget_source("test-busy")
    variables = answer["call_inbound"]["dynamic_variables"]
    assert variables["busy_now"] == "true" and variables["busy_today"].count("-") == 1
    assert asked[0].company_id == salon.pk and asked[0].branch_id == salon.branches.get().pk
    assert "busy_now" not in other["call_inbound"]["dynamic_variables"] and len(asked) == 1
