"""Credentials are encrypted at rest; latency percentiles come from the rollup histogram."""

from __future__ import annotations

import pytest
from django.db import connection

from askpro.models import Company
from mcp_core.metrics import bucket_index, metrics_record, percentile_from_buckets
from mcp_core.models import LATENCY_BUCKETS_MS, MetricRollup


def test_it_stores_tenant_credentials_encrypted(alice):
    plaintext = "cal_live_abcdef0123456789"
    alice.calcom_api_key = plaintext
    alice.stripe_secret_key = "sk_live_zzz999"
    alice.save()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT calcom_api_key, stripe_secret_key FROM askpro_company WHERE id = %s", [alice.pk]
        )
        raw_calcom, raw_stripe = cursor.fetchone()
    assert raw_calcom and raw_calcom != plaintext and plaintext not in raw_calcom
    assert "zzz999" not in raw_stripe
    fresh = Company.objects.get(pk=alice.pk)
    assert fresh.calcom_api_key == plaintext and fresh.stripe_secret_key == "sk_live_zzz999"
    # Empty stays empty (no ciphertext for "no credential").
    with connection.cursor() as cursor:
        cursor.execute("SELECT retell_api_key FROM askpro_company WHERE id = %s", [alice.pk])
        assert cursor.fetchone()[0] == ""


def test_it_encrypts_the_same_secret_differently_each_time(alice, bob):
    for company in (alice, bob):
        company.calcom_api_key = "same-secret"
        company.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT calcom_api_key FROM askpro_company WHERE id IN (%s, %s)", [alice.pk, bob.pk])
        first, second = (row[0] for row in cursor.fetchall())
    assert first != second


def test_it_estimates_percentiles_from_buckets():
    zeros = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    assert percentile_from_buckets(zeros, 0.5) is None
    # 10 calls in (5, 10] ms: the median is interpolated halfway.
    counts = list(zeros)
    counts[3] = 10
    assert percentile_from_buckets(counts, 0.5) == pytest.approx(7.5)
    # 50 calls under 1 ms and 50 in (50, 100]: p50 at the top of the first, p90 80% into the second.
    counts = list(zeros)
    counts[0], counts[6] = 50, 50
    assert percentile_from_buckets(counts, 0.5) == pytest.approx(1.0)
    assert percentile_from_buckets(counts, 0.9) == pytest.approx(90.0)
    # The observed maximum bounds the estimate.
    assert percentile_from_buckets(counts, 0.9, max_ms=70) == pytest.approx(66.0)
    # The open-ended overflow bucket answers with the maximum seen.
    counts = list(zeros)
    counts[-1] = 3
    assert percentile_from_buckets(counts, 0.99, max_ms=42_000) == 42_000


def test_it_rolls_calls_up_per_minute_with_a_histogram(db):
    assert (
        bucket_index(0.5) == 0
        and bucket_index(1) == 0
        and bucket_index(7) == 3
        and bucket_index(99_999) == 13
    )
    for duration, error in ((0.5, False), (7, True), (7, False), (20_000, False)):
        metrics_record(
            service="database",
            operation="search",
            tenant_id=None,
            duration_ms=duration,
            error_code="upstream_error" if error else None,
        )
    row = MetricRollup.objects.get(service="database", operation="search")
    assert (row.calls, row.service_failures, row.caller_errors, row.not_configured, row.tenant_id) == (
        4,
        1,
        0,
        0,
        0,
    )
    assert row.max_ms == 20_000 and row.total_ms == pytest.approx(20_014.5)
    counts = row.bucket_counts()
    assert counts[0] == 1 and counts[3] == 2 and counts[13] == 1 and sum(counts) == 4
    assert percentile_from_buckets(counts, 0.5, max_ms=row.max_ms) == pytest.approx(5 + 5 * 0.5)
