"""Contract tests on the StripeSandbox itself: what the real API refuses, it refuses."""

from __future__ import annotations

import base64
import threading

import pytest
import requests
import stripe

from mcp_servers.stripe.sandbox import DEMO_API_KEY, SANDBOX_CLASS, StripeSandbox, decode_form

KEY = "sk_test_contract_0123456789"


@pytest.fixture(scope="module")
def sb():
    server = StripeSandbox(demo=False, rate_limit_per_second=None).start()
    yield server
    server.stop()


@pytest.fixture
def fresh(sb):
    sb.reset()
    sb.rate_limit_per_second = None
    return sb


def _get(url: str, **kwargs) -> requests.Response:
    return requests.get(url, timeout=5, **kwargs)


def _post(url: str, **kwargs) -> requests.Response:
    return requests.post(url, timeout=5, **kwargs)


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client(sb: StripeSandbox, key: str = KEY) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": sb.url}, max_network_retries=0)


# --- transport ---


def test_it_refuses_a_json_body_as_stripe_does(fresh):
    response = _post(f"{fresh.url}/v1/customers", json={"email": "a@b.c"}, headers=auth())
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "x-www-form-urlencoded" in error["message"]
    assert fresh.objects(KEY, "customer") == []


def test_it_reads_bracket_notation_with_indexed_lists():
    parsed = decode_form(
        [
            ("metadata[a]", "1"),
            ("items[0][price]", "p1"),
            ("items[1][price]", "p2"),
            ("expand[]", "x"),
            ("n", ""),
        ]
    )
    assert parsed == {
        "metadata": {"a": "1"},
        "items": [{"price": "p1"}, {"price": "p2"}],
        "expand": ["x"],
        "n": "",
    }


def test_it_takes_form_bodies_from_the_library_with_nesting(fresh):
    customer = client(fresh).v1.customers.create(params={"email": "a@b.c", "metadata": {"tier": "gold"}})
    assert customer.metadata["tier"] == "gold"
    [request] = fresh.requests_to(r"^/v1/customers$")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"metadata[tier]=gold" in request.body
    assert request.headers["stripe-version"] == stripe.api_version


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer pk_test_publishable123"},
        {"Authorization": "Token sk_test_x"},
    ],
)
def test_it_answers_401_with_stripes_error_body_for_missing_or_bad_auth(fresh, headers):
    response = _get(f"{fresh.url}/v1/balance", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["Request-Id"].startswith("req_")


def test_it_accepts_basic_auth_with_the_key_as_user(fresh):
    token = base64.b64encode(f"{KEY}:".encode()).decode()
    response = _get(f"{fresh.url}/v1/balance", headers={"Authorization": f"Basic {token}"})
    assert response.status_code == 200
    assert response.json()["object"] == "balance"


def test_it_refuses_a_revoked_key_and_masks_it(fresh):
    fresh.revoked_keys.add(KEY)
    with pytest.raises(stripe.AuthenticationError) as caught:
        client(fresh).v1.balance.retrieve()
    assert KEY not in str(caught.value)


def test_it_keeps_one_account_per_key(fresh):
    customer = client(fresh).v1.customers.create()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(fresh, "sk_test_another_account_1").v1.customers.retrieve(customer.id)
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"


def test_it_refuses_a_malformed_stripe_version_and_accepts_a_pinned_one(fresh):
    bad = _get(f"{fresh.url}/v1/balance", headers={**auth(), "Stripe-Version": "latest-please"})
    assert bad.status_code == 400
    good = _get(f"{fresh.url}/v1/balance", headers={**auth(), "Stripe-Version": "2024-06-20"})
    assert good.status_code == 200
    assert good.headers["Stripe-Version"] == "2024-06-20"


def test_it_answers_unknown_urls_and_params_like_stripe(fresh):
    unknown_url = _get(f"{fresh.url}/v1/nothing", headers=auth())
    assert unknown_url.status_code == 404
    assert unknown_url.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/nothing)")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(fresh).v1.customers.create(params={"colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert (caught.value.code, caught.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client(fresh).v1.invoices.create(params={})
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "customer")


# --- idempotency ---


def test_it_replays_the_same_key_with_the_same_params(fresh):
    first = _post(
        f"{fresh.url}/v1/customers", data={"email": "a@b.c"}, headers={**auth(), "Idempotency-Key": "k1"}
    )
    second = _post(
        f"{fresh.url}/v1/customers", data={"email": "a@b.c"}, headers={**auth(), "Idempotency-Key": "k1"}
    )
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(fresh.objects(KEY, "customer")) == 1


def test_it_refuses_the_same_key_with_other_params(fresh):
    _post(f"{fresh.url}/v1/customers", data={"email": "a@b.c"}, headers={**auth(), "Idempotency-Key": "k2"})
    other = _post(
        f"{fresh.url}/v1/customers", data={"email": "z@b.c"}, headers={**auth(), "Idempotency-Key": "k2"}
    )
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    with pytest.raises(stripe.IdempotencyError):
        client(fresh).v1.customers.create(params={"email": "y@b.c"}, options={"idempotency_key": "k2"})


def test_it_forgets_a_key_after_24_hours(fresh):
    first = client(fresh).v1.customers.create(params={"email": "a@b.c"}, options={"idempotency_key": "old"})
    key, stored = next(iter(fresh.account(KEY).idempotency.items()))
    fresh.account(KEY).idempotency[key] = (*stored[:5], stored[5] - 24 * 3600)
    second = client(fresh).v1.customers.create(params={"email": "a@b.c"}, options={"idempotency_key": "old"})
    assert second.id != first.id


def test_it_keeps_keys_per_account(fresh):
    a = client(fresh).v1.customers.create(params={"email": "a@b.c"}, options={"idempotency_key": "same"})
    b = client(fresh, "sk_test_other_account_2").v1.customers.create(
        params={"email": "a@b.c"}, options={"idempotency_key": "same"}
    )
    assert a.id != b.id


def test_it_does_not_keep_a_failed_validation_so_a_corrected_retry_works(fresh):
    bad = _post(f"{fresh.url}/v1/invoices", data={}, headers={**auth(), "Idempotency-Key": "k3"})
    assert bad.status_code == 400
    customer = client(fresh).v1.customers.create()
    good = _post(
        f"{fresh.url}/v1/invoices",
        data={"customer": customer.id},
        headers={**auth(), "Idempotency-Key": "k3"},
    )
    assert good.status_code == 200


def test_it_answers_409_while_the_same_key_is_in_flight(fresh):
    fresh.account(KEY).in_flight.add("k4")
    response = _post(f"{fresh.url}/v1/customers", data={}, headers={**auth(), "Idempotency-Key": "k4"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"


def test_it_makes_one_object_for_concurrent_requests_with_one_key(fresh):
    results = []

    def post() -> None:
        results.append(
            client(fresh).v1.customers.create(params={"email": "c@b.c"}, options={"idempotency_key": "race"})
        )

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({c.id for c in results} | {c["id"] for c in fresh.objects(KEY, "customer")}) == 1


# --- lists and rate limits ---


def test_it_pages_lists_with_has_more_and_cursors(fresh):
    c = client(fresh)
    made = [c.v1.customers.create(params={"name": f"n{i}"}).id for i in range(7)]
    first = c.v1.customers.list(params={"limit": 3})
    assert first.object == "list" and first.url == "/v1/customers"
    assert [x.id for x in first.data] == made[::-1][:3]  # newest first
    assert first.has_more is True
    second = c.v1.customers.list(params={"limit": 3, "starting_after": first.data[-1].id})
    assert [x.id for x in second.data] == made[::-1][3:6]
    back = c.v1.customers.list(params={"limit": 3, "ending_before": second.data[0].id})
    assert [x.id for x in back.data] == made[::-1][:3]
    assert [x.id for x in first.auto_paging_iter()] == made[::-1]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        c.v1.customers.list(params={"limit": 101})
    assert caught.value.param == "limit"


def test_it_answers_429_with_headers_over_the_rate_limit(fresh):
    fresh.rate_limit_per_second = 3
    statuses = [_get(f"{fresh.url}/v1/balance", headers=auth()) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].headers["Stripe-Should-Retry"] == "false"
    assert limited[0].json()["error"]["code"] == "rate_limit"
    with pytest.raises(stripe.RateLimitError):
        for _ in range(5):
            client(fresh).v1.balance.retrieve()


def test_it_injects_faults_with_stripes_error_body(fresh):
    fresh.inject_fault(status=502, count=1)
    with pytest.raises(stripe.APIError) as caught:
        client(fresh).v1.balance.retrieve()
    assert caught.value.http_status == 502
    assert client(fresh).v1.balance.retrieve().object == "balance"


# --- objects ---


def test_it_runs_an_invoice_from_draft_to_paid_and_a_refund(fresh):
    c = client(fresh)
    customer = c.v1.customers.create()
    invoice = c.v1.invoices.create(params={"customer": customer.id, "currency": "eur"})
    assert invoice.status == "draft"
    c.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": 1234, "currency": "eur"}
    )
    with pytest.raises(stripe.InvalidRequestError):  # the invoice's currency is eur
        c.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": 1, "currency": "usd"}
        )
    final = c.v1.invoices.finalize_invoice(invoice.id)
    assert (final.status, final.total, final.amount_due) == ("open", 1234, 1234)
    assert final.number and final.hosted_invoice_url and final.invoice_pdf
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.invoices.finalize_invoice(invoice.id)
    paid = c.v1.invoices.pay(invoice.id)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 1234, 0)
    [charge] = c.v1.charges.list(params={"customer": customer.id}).data
    refund = c.v1.refunds.create(params={"charge": charge.id, "amount": 234})
    assert refund.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        c.v1.refunds.create(params={"charge": charge.id, "amount": 1001})
    assert caught.value.code == "amount_too_large"
    assert c.v1.balance.retrieve().available[0].amount == 1000


def test_it_declines_stripes_decline_test_card(fresh):
    c = client(fresh)
    with pytest.raises(stripe.CardError) as caught:
        c.v1.payment_intents.create(
            params={
                "amount": 500,
                "currency": "eur",
                "payment_method": "pm_card_chargeDeclined",
                "confirm": True,
            }
        )
    assert caught.value.code == "card_declined"


def test_it_updates_and_cancels_subscriptions(fresh):
    c = client(fresh)
    customer = c.v1.customers.create()
    monthly = c.v1.prices.create(
        params={
            "currency": "eur",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "P"},
        }
    )
    yearly = c.v1.prices.create(
        params={
            "currency": "eur",
            "unit_amount": 9000,
            "recurring": {"interval": "year"},
            "product": monthly.product,
        }
    )
    sub = c.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": monthly.id}]})
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    sub = c.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert sub.cancel_at == item.current_period_end
    sub = c.v1.subscriptions.update(sub.id, params={"pause_collection": {"behavior": "void"}})
    assert sub.pause_collection.behavior == "void"
    sub = c.v1.subscriptions.update(sub.id, params={"pause_collection": ""})
    assert sub.pause_collection is None
    sub = c.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "price": yearly.id}]})
    assert sub["items"].data[0].price.id == yearly.id and sub["items"].data[0].id == item.id
    assert c.v1.subscriptions.cancel(sub.id).status == "canceled"
    assert c.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert len(c.v1.subscriptions.list(params={"customer": customer.id, "status": "all"}).data) == 1
    with pytest.raises(stripe.InvalidRequestError):
        c.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})


# --- run_sandbox convention and demo state ---


def test_it_starts_as_run_sandbox_starts_it_with_demo_state():
    demo = SANDBOX_CLASS(host="127.0.0.1", port=0).start()
    try:
        assert demo.service == "stripe"
        c = client(demo, DEMO_API_KEY)
        assert c.v1.customers.retrieve("cus_demo1").name == "Salon Sonnenschein"
        invoices = c.v1.invoices.list(params={"customer": "cus_demo2"}).data
        assert sorted(i.status for i in invoices) == ["open", "paid", "paid", "paid"]
        assert "sk_test_sandbox_demo" in demo.describe()
    finally:
        demo.stop()
