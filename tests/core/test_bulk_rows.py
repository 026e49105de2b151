"""mcp_core.db.insert_many and update_many: one INSERT or UPDATE (columns as arrays through
unnest on PostgreSQL) that stores exactly what bulk_create / bulk_update store, sets the primary
keys, and upserts on a key."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from askpro.models import Company
from mcp_core.db import insert_many
from mcp_servers.messaging.models import Message
from notifications.models import Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def company():
    return Company.objects.create(name="Acme", slug="acme")


def message(company, key: str, **fields) -> Message:
    values = {"channel": "sms", "direction": "outbound", "customer_number": "+4915112345678", "body": "Hallo"}
    return Message(company=company, idempotency_key=key, **{**values, **fields})


def stored(row) -> dict:
    found = type(row).objects.get(pk=row.pk)
    return {k: v for k, v in model_to_dict(found).items() if k not in ("id",)}


def test_it_stores_what_bulk_create_stores_and_sets_the_keys(company):
    odd = {
        "body": "Grüße 🌷 'quoted' \"double\" {braces} \\ backslash, comma",
        "content_variables": {"1": "Anna", "nested": [1, {"x": None}]},
        "price": Decimal("0.07900"),
        "price_unit": "USD",
        "segments": 2,
        "error_code": None,
        "urgent": True,
        "send_after": dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    }
    ours = [message(company, f"ours-{i}", **odd) for i in range(3)] + [message(company, "ours-plain")]
    theirs = [message(company, f"theirs-{i}", **odd) for i in range(3)] + [message(company, "theirs-plain")]
    insert_many(ours)
    Message.objects.bulk_create(theirs)
    assert all(m.pk for m in ours) and len({m.pk for m in ours}) == 4
    assert [
        m.idempotency_key for m in Message.objects.filter(pk__in=[m.pk for m in ours]).order_by("pk")
    ] == [m.idempotency_key for m in ours]
    for mine, other in zip(ours, theirs, strict=True):
        a, b = stored(mine), stored(other)
        assert a.pop("idempotency_key").removeprefix("ours") == b.pop("idempotency_key").removeprefix(
            "theirs"
        )
        assert a == b
        row = Message.objects.get(pk=mine.pk)
        assert row.created_at is not None and row.updated_at == row.created_at == mine.created_at
        assert not mine._state.adding


def test_a_taken_key_raises_and_writes_nothing(company):
    insert_many([message(company, "taken")])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_many([message(company, "new-one"), message(company, "taken")])
    assert list(Message.objects.values_list("idempotency_key", flat=True)) == ["taken"]


def test_it_upserts_the_named_fields_only(company):
    first = Notification(company=company, kind="reminder", channel="sms", status="failed", recipient="+49151",
                         idempotency_key="reminder:1:sms", error_code="timeout")  # fmt: skip
    insert_many([first])
    again = Notification(company=company, kind="confirmation", channel="sms", status="sent", recipient="+49152",
                         idempotency_key="reminder:1:sms", message_id=42)  # fmt: skip
    fresh = Notification(company=company, kind="reminder", channel="email", status="sent",
                         idempotency_key="reminder:1:email")  # fmt: skip
    insert_many([again, fresh], unique_fields=["company", "idempotency_key"],
                update_fields=["status", "message_id", "error_code", "updated_at"])  # fmt: skip
    assert Notification.objects.count() == 2
    row = Notification.objects.get(idempotency_key="reminder:1:sms")
    assert row.pk == first.pk == again.pk
    assert (row.status, row.message_id, row.error_code) == ("sent", 42, "")
    assert (row.kind, row.recipient) == ("reminder", "+49151")  # not named: kept
    assert Notification.objects.get(idempotency_key="reminder:1:email").pk == fresh.pk


def test_nothing_to_insert_is_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_many([])


def test_update_many_gives_each_row_its_own_values(company):
    from mcp_core.db import update_many

    rows = [message(company, f"u-{i}") for i in range(3)]
    insert_many(rows)
    other = message(company, "untouched", status="queued")
    insert_many([other])
    before = Message.objects.get(pk=other.pk).updated_at
    for i, row in enumerate(rows):
        row.twilio_sid, row.status, row.price = f"SM{i:032x}", ["sent", "queued", "failed"][i], None
        row.body = "not named: not written"
    rows[0].price = Decimal("0.0790")
    assert update_many(rows, ["twilio_sid", "status", "price"]) == 3
    got = {m.idempotency_key: m for m in Message.objects.all()}
    assert [(got[f"u-{i}"].twilio_sid, got[f"u-{i}"].status) for i in range(3)] == [
        (f"SM{i:032x}", s) for i, s in enumerate(["sent", "queued", "failed"])
    ]
    assert got["u-0"].price == Decimal("0.0790") and got["u-1"].price is None
    assert all(got[f"u-{i}"].body == "Hallo" for i in range(3))
    assert all(got[f"u-{i}"].updated_at > got[f"u-{i}"].created_at for i in range(3))  # auto_now
    assert (got["untouched"].status, got["untouched"].updated_at) == ("queued", before)


def test_a_field_that_prepares_its_own_values_still_does(company):
    """An encrypted field (a TextField subclass) goes through its own preparation: the stored
    column holds ciphertext, and the value reads back."""
    from django.db import connection

    rows = [
        Company(name=f"Salon {i}", slug=f"salon-{i}", calcom_api_key=f"cal_live_secret_{i}") for i in range(2)
    ]
    insert_many(rows)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT calcom_api_key FROM {Company._meta.db_table} WHERE id = %s", [rows[0].pk])
        (raw,) = cursor.fetchone()
    assert "cal_live_secret_0" not in raw
    assert Company.objects.get(pk=rows[1].pk).calcom_api_key == "cal_live_secret_1"


def test_naive_datetimes_and_plain_numbers_are_prepared_as_django_would(company):
    """A column with a value psycopg should not take as it is (a naive datetime, a float for a
    decimal, a number for a text) goes through the field's preparation, like bulk_create."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Django's naive-datetime warning
        naive = dt.datetime(2030, 1, 2, 3, 4, 5)  # noqa: DTZ001 - the point of the test
        row = message(company, "mixed", send_after=naive, price=0.079, keyword=12)
        insert_many([row])
    got = Message.objects.get(pk=row.pk)
    assert got.send_after == timezone.make_aware(naive)  # in TIME_ZONE, as Django takes it
    assert got.price == Decimal("0.07900") and got.keyword == "12"


def test_an_upsert_names_both_its_key_and_what_it_updates(company):
    with pytest.raises(ValueError, match="go together"):
        insert_many([message(company, "x")], unique_fields=["company", "idempotency_key"])
    assert not Message.objects.exists()
