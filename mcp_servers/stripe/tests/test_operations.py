"""Every Stripe operation through the pipeline, the real `stripe` library and a live sandbox."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from askpro.demo import seed_demo
from askpro.models import Company, Invoice
from mcp_core.api_keys import api_key_authenticate
from mcp_core.pipeline import call_operation
from mcp_core.registry import get_registry
from mcp_servers.stripe.sandbox import DEMO_API_KEY, SANDBOX_CLASS

from .conftest import ALICE_OWN_KEY, PLATFORM_KEY, lib, paid_invoice

pytestmark = pytest.mark.django_db


def _posts(sandbox, path_regex: str) -> list:
    return [r for r in sandbox.requests_to(path_regex) if r.method == "POST"]


# --- overview and payments: only the tenant's customer ---


def test_it_reports_only_the_tenants_own_revenue_invoices_and_subscriptions(world):
    response = world.call("get_payment_overview", {"period": "month"})
    assert response.success, response.error
    data = response.data
    assert data["customer_id"] == world.ids["alice_customer"]
    [eur] = data["totals"]
    # Alice: a 49.00 invoice payment and a 25.00 payment intent; Bob's 120.00 is not hers.
    assert Decimal(eur["gross"]) == Decimal("74.00")
    assert Decimal(eur["net"]) == Decimal("74.00")
    assert eur["charges"] == 2
    assert Decimal(eur["invoiced_paid"]) == Decimal("49.00")
    assert data["invoices"]["paid"] == 1
    assert data["subscriptions"]["active"] == 1
    assert data["subscriptions"]["mrr"] == [{"amount": "49.00", "currency": "eur"}]
    assert {c["id"] for c in data["recent_charges"]} >= {world.ids["alice_charge"]}
    assert data["truncated"] is False
    # Every list call was filtered to Alice's customer.
    lists = world.sandbox.requests_to(r"^/v1/(charges|invoices|subscriptions)$")
    assert lists and all(r.query.get("customer") == [world.ids["alice_customer"]] for r in lists)


def test_it_counts_refunds_and_open_invoices_in_the_overview(world):
    world.lib.v1.refunds.create(params={"charge": world.ids["alice_charge"], "amount": 900})
    open_invoice = world.lib.v1.invoices.create(
        params={"customer": world.ids["alice_customer"], "currency": "eur", "collection_method": "send_invoice",
                "days_until_due": 7}
    )  # fmt: skip
    world.lib.v1.invoice_items.create(
        params={
            "customer": world.ids["alice_customer"],
            "invoice": open_invoice.id,
            "amount": 1000,
            "currency": "eur",
        }
    )
    world.lib.v1.invoices.finalize_invoice(open_invoice.id)
    data = world.call("get_payment_overview", {"period": "week"}).data
    [eur] = data["totals"]
    assert Decimal(eur["refunded"]) == Decimal("9.00")
    assert Decimal(eur["net"]) == Decimal("65.00")
    assert Decimal(eur["outstanding"]) == Decimal("10.00")
    assert data["invoices"]["open"] == 1


def test_it_pages_through_long_lists_for_the_overview(world):
    account = world.sandbox.account(PLATFORM_KEY)
    with world.sandbox.lock:  # arranged in the sandbox's state directly: 105 API calls add nothing here
        for _ in range(105):
            world.sandbox._create_charge(account, world.ids["alice_customer"], 100, "eur", None, {})
    world.sandbox.request_log.clear()
    data = world.call("get_payment_overview").data
    assert data["totals"][0]["charges"] == 107
    charge_pages = world.sandbox.requests_to(r"^/v1/charges$")
    assert len(charge_pages) == 2
    assert "starting_after" in charge_pages[1].query


def test_it_lists_the_tenants_customer_payments(world):
    response = world.call("get_customer_payments", {"limit": 10})
    assert response.success, response.error
    data = response.data
    assert data["customer"]["id"] == world.ids["alice_customer"]
    assert data["customer"]["email"] == "billing@alice-salon.example"
    assert {c["id"] for c in data["charges"]} == {
        world.ids["alice_charge"],
        world.lib.v1.payment_intents.retrieve(world.ids["alice_intent"]).latest_charge,
    }
    assert [i["id"] for i in data["invoices"]] == [world.ids["alice_invoice"]]
    bob_view = world.call("get_customer_payments", key=world.bob_key).data
    assert world.ids["alice_charge"] not in {c["id"] for c in bob_view["charges"]}


def test_it_refuses_reads_for_a_tenant_without_a_stripe_customer(world):
    Company.objects.filter(pk=world.alice.pk).update(stripe_customer_id="")
    response = world.call("get_payment_overview")
    assert response.error_code == "not_configured"
    assert "stripe_customer_id" in response.error["message"]
    assert world.sandbox.requests_to(r"^/v1/") == []


# --- create_invoice ---


def test_it_creates_an_invoice_in_the_tenants_currency_and_records_it(world):
    Company.objects.filter(pk=world.alice.pk).update(currency="CHF")
    due = timezone.localdate() + dt.timedelta(days=10)
    customer = world.alice.customers.first()
    response = world.call(
        "create_invoice",
        {
            "items": [
                {"description": "Setup", "amount": "120.50"},
                {"description": "Extra minutes", "amount": 0.25, "quantity": 4},
            ],
            "due_date": due.isoformat(),
            "metadata": {"order": "A-17"},
            "description": "March",
            "customer_id": customer.pk,
        },
        idempotency_key="inv-1",
    )
    assert response.success, response.error
    invoice = response.data["invoice"]
    assert invoice["currency"] == "chf"
    assert invoice["status"] == "draft"
    assert Decimal(invoice["total"]) == Decimal("121.50")
    assert invoice["metadata"]["order"] == "A-17"
    stripe_invoice = world.lib.v1.invoices.retrieve(invoice["id"])
    assert stripe_invoice.customer == world.ids["alice_customer"]
    assert stripe_invoice.collection_method == "send_invoice"
    assert dt.datetime.fromtimestamp(stripe_invoice.due_date, tz=dt.UTC).date() == due
    assert [line.amount for line in stripe_invoice.lines.data] == [12050, 100]
    local = Invoice.objects.get(pk=response.data["local_invoice_id"])
    assert (local.company_id, local.customer_id, local.stripe_invoice_id) == (
        world.alice.pk,
        customer.pk,
        invoice["id"],
    )
    assert (local.total, local.currency, local.due_date, local.status) == (
        Decimal("121.50"),
        "CHF",
        due,
        "draft",
    )
    # The Idempotency-Key reached Stripe, namespaced by tenant.
    [create] = _posts(world.sandbox, r"^/v1/invoices$")
    assert create.headers["idempotency-key"] == f"askpro:{world.alice.pk}:invoice:inv-1"


def test_it_finalizes_on_request(world):
    response = world.call(
        "create_invoice", {"items": [{"description": "Setup", "amount": 10}], "finalize": True}
    )
    assert response.success, response.error
    invoice = response.data["invoice"]
    assert invoice["status"] == "open"
    assert invoice["number"]
    assert Invoice.objects.get(stripe_invoice_id=invoice["id"]).number == invoice["number"]


def test_it_creates_one_invoice_when_the_same_request_comes_twice(world):
    params = {"items": [{"description": "Setup", "amount": "30"}], "days_until_due": 14}
    first = world.call("create_invoice", params, idempotency_key="same-key")
    second = world.call("create_invoice", params, idempotency_key="same-key")
    assert first.success and second.success
    assert first.data["invoice"]["id"] == second.data["invoice"]["id"]
    assert second.data["replayed"] is True
    assert Invoice.objects.filter(company=world.alice).count() == 1
    assert len(world.sandbox.objects(PLATFORM_KEY, "invoice")) == 3  # 2 from the world + 1
    # Without a key, the same params are the same request too.
    third = world.call("create_invoice", {**params, "description": "no key"})
    fourth = world.call("create_invoice", {**params, "description": "no key"})
    assert third.data["invoice"]["id"] == fourth.data["invoice"]["id"]
    assert Invoice.objects.filter(company=world.alice).count() == 2


def test_it_treats_equal_params_without_a_key_as_one_request_for_about_a_day(world):
    params = {"items": [{"description": "Monthly", "amount": "49"}]}
    first = world.call("create_invoice", params).data
    local = Invoice.objects.get(pk=first["local_invoice_id"])
    day = int(time.time() // 86400)
    key = local.metadata["askpro_idempotency_key"]
    assert key.startswith(f"askpro:{world.alice.pk}:invoice:auto-{day}-")
    # Made yesterday (UTC): still the same request today, answered without a Stripe write.
    local.metadata["askpro_idempotency_key"] = key.replace(f"auto-{day}-", f"auto-{day - 1}-")
    local.save(update_fields=["metadata"])
    world.sandbox.request_log.clear()
    again = world.call("create_invoice", params).data
    assert (again["invoice"]["id"], again["replayed"]) == (first["invoice"]["id"], True)
    assert _posts(world.sandbox, r"^/v1/") == []


def test_it_refuses_the_same_key_with_other_params(world):
    world.call("create_invoice", {"items": [{"description": "A", "amount": 5}]}, idempotency_key="k-conflict")
    response = world.call(
        "create_invoice", {"items": [{"description": "B", "amount": 6}]}, idempotency_key="k-conflict"
    )
    assert response.error_code == "conflict"
    assert response.error["details"]["field"] == "idempotency_key"
    assert Invoice.objects.filter(company=world.alice).count() == 1


def test_it_hashes_a_caller_key_that_cannot_travel_in_a_header(world):
    params = {"items": [{"description": "A", "amount": 5}]}
    first = world.call("create_invoice", params, idempotency_key="Rechnung März 2026\nx")
    again = world.call("create_invoice", params, idempotency_key="Rechnung März 2026\nx")
    assert first.success, first.error
    assert again.data["invoice"]["id"] == first.data["invoice"]["id"]
    [create] = _posts(world.sandbox, r"^/v1/invoices$")
    assert len(create.headers["idempotency-key"].rsplit(":", 1)[-1]) == 64


def test_it_lets_two_tenants_use_the_same_idempotency_key(world):
    a = world.call("create_invoice", {"items": [{"description": "A", "amount": 5}]}, idempotency_key="shared")
    b = world.call(
        "create_invoice",
        {"items": [{"description": "B", "amount": 7}]},
        key=world.bob_key,
        idempotency_key="shared",
    )
    assert a.success and b.success
    assert a.data["invoice"]["id"] != b.data["invoice"]["id"]
    assert (
        lib(world.sandbox).v1.invoices.retrieve(b.data["invoice"]["id"]).customer == world.ids["bob_customer"]
    )


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_invoice_for_concurrent_duplicates(world):
    params = {"items": [{"description": "Setup", "amount": "99.99"}], "metadata": {"run": "concurrent"}}
    results = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(world.call("create_invoice", params, idempotency_key="race-1"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.success for r in results), [r.error for r in results]
    assert len({r.data["invoice"]["id"] for r in results}) == 1
    assert Invoice.objects.filter(company=world.alice).count() == 1
    created = [i for i in world.sandbox.objects(PLATFORM_KEY, "invoice")
               if i["metadata"].get("run") == "concurrent"]  # fmt: skip
    assert len(created) == 1
    assert len(world.sandbox.objects(PLATFORM_KEY, "invoiceitem")) == 3  # 2 + 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"items": [{"description": "x", "amount": 0}]}, "items[0].amount"),
        ({"items": [{"description": "x", "amount": "1.005"}]}, "items[0].amount"),
        ({"items": [{"description": "x", "amount": "abc"}]}, "items[0].amount"),
        ({"items": []}, "items"),
        ({"items": [{"description": "x", "amount": 1}], "due_date": "2001-01-01"}, "due_date"),
        (
            {"items": [{"description": "x", "amount": 1}], "due_date": "2999-01-01", "days_until_due": 3},
            "due_date",
        ),
        ({"items": [{"description": "x", "amount": 1}], "customer_id": 999999}, "customer_id"),
        ({"items": [{"description": "x", "amount": 1}], "colour": "red"}, "colour"),
    ],
)
def test_it_refuses_bad_invoice_input_naming_the_field_and_writing_nothing(world, params, field):
    response = world.call("create_invoice", params)
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == field
    assert _posts(world.sandbox, r"^/v1/") == []
    assert not Invoice.objects.filter(company=world.alice).exists()


def test_it_refuses_another_tenants_customer_for_the_invoice(world):
    bobs_customer = world.bob.customers.first()
    response = world.call(
        "create_invoice", {"items": [{"description": "x", "amount": 1}], "customer_id": bobs_customer.pk}
    )
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == "customer_id"


def test_it_creates_the_stripe_customer_of_a_tenant_that_has_none(world):
    Company.objects.filter(pk=world.alice.pk).update(stripe_customer_id="")
    response = world.call("create_invoice", {"items": [{"description": "x", "amount": 1}]})
    assert response.success, response.error
    world.alice.refresh_from_db()
    assert world.alice.stripe_customer_id.startswith("cus_")
    customer = world.lib.v1.customers.retrieve(world.alice.stripe_customer_id)
    assert customer.metadata["askpro_company_id"] == str(world.alice.pk)
    assert world.lib.v1.invoices.retrieve(response.data["invoice"]["id"]).customer == customer.id


# --- finalize_invoice ---


def test_it_finalizes_a_draft_invoice_once(world):
    created = world.call("create_invoice", {"items": [{"description": "x", "amount": 12}]}).data
    first = world.call("finalize_invoice", {"invoice_id": created["invoice"]["id"]})
    assert first.success, first.error
    assert first.data["invoice"]["status"] == "open"
    assert first.data["already_finalized"] is False
    local = Invoice.objects.get(pk=created["local_invoice_id"])
    assert (local.status, local.number) == ("open", first.data["invoice"]["number"])
    again = world.call("finalize_invoice", {"invoice_id": created["invoice"]["id"]})
    assert again.data["already_finalized"] is True
    assert len(_posts(world.sandbox, r"/finalize$")) == 1


def test_it_does_not_let_a_tenant_finalize_another_tenants_invoice(world):
    bobs = world.call(
        "create_invoice", {"items": [{"description": "x", "amount": 12}]}, key=world.bob_key
    ).data
    response = world.call("finalize_invoice", {"invoice_id": bobs["invoice"]["id"]})
    assert response.error_code == "not_found"
    assert response.error["details"]["field"] == "invoice_id"
    assert world.lib.v1.invoices.retrieve(bobs["invoice"]["id"]).status == "draft"
    missing = world.call("finalize_invoice", {"invoice_id": "in_doesnotexist"})
    assert missing.error_code == "not_found"
    # The same answer for "someone else's" and "missing": existence does not leak.
    assert response.error["message"].replace(bobs["invoice"]["id"], "X") == missing.error["message"].replace(
        "in_doesnotexist", "X"
    )


# --- process_refund ---


def test_it_refunds_part_of_a_charge_then_the_rest(world):
    part = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "amount": "10.00"})
    assert part.success, part.error
    assert Decimal(part.data["refund"]["amount"]) == Decimal("10.00")
    assert part.data["charge_fully_refunded"] is False
    rest = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "reason": "duplicate"})
    assert rest.success, rest.error
    assert Decimal(rest.data["refund"]["amount"]) == Decimal("39.00")
    assert rest.data["charge_fully_refunded"] is True
    again = world.call(
        "process_refund", {"charge_id": world.ids["alice_charge"], "amount": 1, "reason": "fraudulent"}
    )
    assert again.error_code == "validation_error"


def test_it_refunds_a_payment_intent(world):
    response = world.call("process_refund", {"payment_intent_id": world.ids["alice_intent"]})
    assert response.success, response.error
    assert Decimal(response.data["refund"]["amount"]) == Decimal("25.00")


def test_it_makes_one_refund_when_the_same_refund_is_asked_twice(world):
    first = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "amount": 5})
    second = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "amount": 5})
    assert first.data["refund"]["id"] == second.data["refund"]["id"]
    assert second.data["replayed"] is True
    assert world.lib.v1.charges.retrieve(world.ids["alice_charge"]).amount_refunded == 500
    # A new Idempotency-Key is a new, deliberate refund.
    third = world.call(
        "process_refund", {"charge_id": world.ids["alice_charge"], "amount": 5}, idempotency_key="r2"
    )
    assert third.data["refund"]["id"] != first.data["refund"]["id"]


def test_it_does_not_let_tenant_b_refund_tenant_as_charge(world):
    response = world.call("process_refund", {"charge_id": world.ids["alice_charge"]}, key=world.bob_key)
    assert response.error_code == "not_found"
    response = world.call(
        "process_refund", {"payment_intent_id": world.ids["alice_intent"]}, key=world.bob_key
    )
    assert response.error_code == "not_found"
    assert _posts(world.sandbox, r"^/v1/refunds$") == []
    assert world.lib.v1.charges.retrieve(world.ids["alice_charge"]).amount_refunded == 0


def test_it_needs_the_admin_scope_to_refund(world, key_factory):
    writer = key_factory(tenant=world.alice, scopes=["stripe:write"])
    response = world.call("process_refund", {"charge_id": world.ids["alice_charge"]}, key=writer)
    assert response.error_code == "forbidden"
    assert response.error["details"]["required_scope"] == "stripe:admin"
    admin = key_factory(tenant=world.alice, scopes=["stripe:admin"])
    assert world.call("process_refund", {"charge_id": world.ids["alice_charge"]}, key=admin).success


def test_it_wants_exactly_one_of_charge_and_payment_intent(world):
    both = world.call(
        "process_refund",
        {"charge_id": world.ids["alice_charge"], "payment_intent_id": world.ids["alice_intent"]},
    )
    neither = world.call("process_refund", {})
    assert both.error_code == neither.error_code == "validation_error"
    assert (
        world.call("process_refund", {"charge_id": "not-a-charge"}).error["details"]["field"] == "charge_id"
    )


def test_it_refuses_a_refund_larger_than_the_charge(world):
    response = world.call("process_refund", {"charge_id": world.ids["alice_charge"], "amount": 50})
    assert response.error_code == "validation_error"
    assert response.error["details"]["field"] == "amount"


# --- subscriptions ---


def test_it_gets_the_tenants_subscription(world):
    by_default = world.call("get_subscription")
    assert by_default.success, by_default.error
    sub = by_default.data["subscription"]
    assert sub["id"] == world.ids["alice_subscription"]
    assert sub["status"] == "active"
    assert sub["items"][0]["price_id"] == world.ids["price"]
    assert sub["items"][0]["interval"] == "month"
    assert sub["monthly_amount"] == [{"amount": "49.00", "currency": "eur"}]
    assert sub["current_period_end"] > sub["current_period_start"]
    by_id = world.call("get_subscription", {"subscription_id": world.ids["alice_subscription"]})
    assert by_id.data == by_default.data


def test_it_does_not_show_another_tenants_subscription(world):
    response = world.call("get_subscription", {"subscription_id": world.ids["bob_subscription"]})
    assert response.error_code == "not_found"
    response = world.call(
        "update_subscription",
        {"subscription_id": world.ids["bob_subscription"], "action": "cancel", "at_period_end": False},
    )
    assert response.error_code == "not_found"
    assert world.lib.v1.subscriptions.retrieve(world.ids["bob_subscription"]).status == "active"


def test_it_pauses_resumes_changes_plan_and_cancels(world):
    Company.objects.filter(pk=world.alice.pk).update(stripe_subscription_id=world.ids["alice_subscription"])
    paused = world.call("update_subscription", {"action": "pause"})
    assert paused.success, paused.error
    assert paused.data["subscription"]["paused"] is True
    assert paused.data["subscription"]["pause_behavior"] == "void"
    resumed = world.call("update_subscription", {"action": "resume"})
    assert resumed.data["subscription"]["paused"] is False
    changed = world.call("update_subscription", {"action": "change_plan", "price_id": world.ids["yearly"]})
    assert changed.success, changed.error
    assert changed.data["subscription"]["items"][0]["price_id"] == world.ids["yearly"]
    assert changed.data["subscription"]["monthly_amount"] == [{"amount": "39.00", "currency": "eur"}]
    at_end = world.call("update_subscription", {"action": "cancel"})
    assert at_end.data["subscription"]["cancel_at_period_end"] is True
    assert at_end.data["subscription"]["status"] == "active"
    undone = world.call("update_subscription", {"action": "resume"})
    assert undone.data["subscription"]["cancel_at_period_end"] is False
    now = world.call("update_subscription", {"action": "cancel", "at_period_end": False})
    assert now.data["subscription"]["status"] == "canceled"
    world.alice.refresh_from_db()
    assert world.alice.billing_status == "canceled"
    again = world.call("update_subscription", {"action": "pause"})
    assert again.error_code == "conflict"


def test_it_validates_plan_changes(world):
    missing = world.call("update_subscription", {"action": "change_plan"})
    assert missing.error_code == "validation_error"
    assert missing.error["details"]["field"] == "price_id"
    stray = world.call("update_subscription", {"action": "pause", "price_id": world.ids["price"]})
    assert stray.error["details"]["field"] == "price_id"
    unknown = world.call("update_subscription", {"action": "change_plan", "price_id": "price_doesnotexist"})
    assert unknown.error_code == "not_found"
    assert unknown.error["details"]["field"] == "price_id"
    assert world.call("update_subscription", {"action": "explode"}).error["details"]["field"] == "action"


# --- test_connection, credentials, not_configured ---


def test_it_tests_the_connection_with_the_platform_key(world):
    response = world.call("test_connection")
    assert response.success, response.error
    assert response.data["connected"] is True
    assert response.data["credentials"] == "platform"
    assert response.data["customer"]["id"] == world.ids["alice_customer"]
    [balance] = world.sandbox.requests_to(r"^/v1/balance$")
    assert balance.headers["authorization"] == f"Bearer {PLATFORM_KEY}"
    assert "stripe-version" in balance.headers


def test_it_uses_the_tenants_own_key_before_the_platform_key(world):
    own = lib(world.sandbox, ALICE_OWN_KEY)
    customer = own.v1.customers.create(params={"name": "Alice in her own account"})
    paid_invoice(own, customer.id, 7700)
    Company.objects.filter(pk=world.alice.pk).update(stripe_customer_id=customer.id)
    world.alice.refresh_from_db()
    world.alice.stripe_secret_key = ALICE_OWN_KEY
    world.alice.save(update_fields=["stripe_secret_key"])
    response = world.call("test_connection")
    assert response.data["credentials"] == "tenant"
    assert response.data["customer"]["name"] == "Alice in her own account"
    overview = world.call("get_payment_overview").data
    assert Decimal(overview["totals"][0]["gross"]) == Decimal("77.00")
    assert {r.headers["authorization"] for r in world.sandbox.requests_to(r"^/v1/")} == {
        f"Bearer {ALICE_OWN_KEY}"
    }
    # Bob still uses the platform key.
    assert world.call("test_connection", key=world.bob_key).data["credentials"] == "platform"


def test_it_reports_a_missing_customer_in_test_connection(world):
    Company.objects.filter(pk=world.alice.pk).update(stripe_customer_id="cus_gone")
    response = world.call("test_connection")
    assert response.success
    assert response.data["customer"] is None
    assert "cus_gone" in response.data["customer_problem"]


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("get_payment_overview", {}),
        ("get_customer_payments", {}),
        ("create_invoice", {"items": [{"description": "x", "amount": 1}]}),
        ("finalize_invoice", {"invoice_id": "in_x"}),
        ("process_refund", {"charge_id": "ch_x"}),
        ("get_subscription", {}),
        ("update_subscription", {"action": "pause"}),
        ("test_connection", {}),
    ],
)
def test_it_answers_not_configured_without_any_key(world, settings, operation, params):
    settings.STRIPE_SECRET_KEY = None
    response = world.call(operation, params)
    assert response.error_code == "not_configured"
    assert world.sandbox.requests_to(r"^/v1/") == []
    assert not Invoice.objects.filter(company=world.alice).exists()


def test_it_declares_honest_annotations():
    ops = get_registry().get_server("stripe").operations
    for name in ("get_payment_overview", "get_customer_payments", "get_subscription", "test_connection"):
        assert ops[name].annotations.read_only and ops[name].annotations.open_world
    for name in ("create_invoice", "finalize_invoice", "process_refund", "update_subscription"):
        assert not ops[name].annotations.read_only and ops[name].annotations.open_world
    assert ops["process_refund"].annotations.destructive and ops["process_refund"].scope == "stripe:admin"
    assert ops["update_subscription"].annotations.destructive
    assert not ops["create_invoice"].annotations.destructive and ops["create_invoice"].annotations.idempotent
    assert all(op.tenant_scoped for op in ops.values())


# --- health ---


def test_it_is_healthy_when_the_keys_answer(stripe_sb, db):
    result = get_registry().get_server("stripe").health()
    assert result.status == "healthy", result.detail
    assert stripe_sb.requests_to(r"^/v1/balance$")


def test_it_is_unhealthy_with_a_rejected_key_and_never_shows_it(stripe_sb, db):
    stripe_sb.revoked_keys.add(PLATFORM_KEY)
    result = get_registry().get_server("stripe").health()
    assert result.status == "unhealthy"
    assert "sk_test_platform" not in result.detail
    assert "401" in result.detail


def test_it_is_degraded_when_one_of_several_keys_fails(stripe_sb, alice):
    alice.stripe_secret_key = ALICE_OWN_KEY
    alice.save(update_fields=["stripe_secret_key"])
    stripe_sb.revoked_keys.add(ALICE_OWN_KEY)
    result = get_registry().get_server("stripe").health()
    assert result.status == "degraded"
    assert "tenant key" in result.detail and ALICE_OWN_KEY not in result.detail


def test_it_is_degraded_when_stripe_answers_slowly(stripe_sb, db):
    stripe_sb.inject_fault(delay=1.1, path=r"^/v1/balance$", count=1)
    result = get_registry().get_server("stripe").health()
    assert result.status == "degraded"
    assert "slowly" in result.detail


def test_it_is_not_configured_without_keys(stripe_sb, settings, db):
    settings.STRIPE_SECRET_KEY = None
    server = get_registry().get_server("stripe")
    assert server.is_configured() is False
    assert server.health().status == "not_configured"
    assert stripe_sb.requests_to(r"^/v1/") == []


# --- SANDBOX=1: the demo tenants against the demo account ---


def test_it_works_for_the_demo_tenants_against_the_demo_sandbox(settings, key_factory):

    seed_demo()
    demo = SANDBOX_CLASS(host="127.0.0.1", port=0).start()
    try:
        settings.STRIPE_API_BASE = demo.url
        settings.STRIPE_SECRET_KEY = DEMO_API_KEY
        key = key_factory(tenant=None, scopes=["stripe:read"])
        principal = api_key_authenticate(key)
        overview = call_operation(
            "stripe",
            "get_payment_overview",
            {"period": "year"},
            principal=principal,
            tenant="salon-sonnenschein",
        )
        assert overview.success, overview.error
        [eur] = overview.data["totals"]
        assert (eur["gross"], eur["charges"], eur["outstanding"]) == ("147.00", 3, "49.00")
        assert overview.data["invoices"] == {"draft": 0, "open": 1, "paid": 3, "void": 0, "uncollectible": 0}
        assert overview.data["subscriptions"]["mrr"] == [{"amount": "49.00", "currency": "eur"}]
        sub = call_operation("stripe", "get_subscription", {}, principal=principal, tenant="praxis-weber")
        assert sub.data["subscription"]["id"] == "sub_demo2"
    finally:
        demo.stop()
