"""mcp_core.busy_time: busy intervals from the sources servers declare, merged; a failing
source is skipped, never fatal; slots overlapping busy time are left out."""

from __future__ import annotations

import datetime as dt

import pytest

from mcp_core import busy_time
from mcp_core.busy_time import BusyQuery, busy_intervals, busy_source, forget_source, merge, without_busy

T0 = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def only_test_sources(monkeypatch):
    monkeypatch.setattr(busy_time, "_sources", {})
    monkeypatch.setattr(busy_time, "_covers", {})


def test_it_merges_overlapping_and_touching_intervals():
    assert merge(
        [(T0 + 2 * H, T0 + 3 * H), (T0, T0 + H), (T0 + H, T0 + 2 * H), (T0 + 5 * H, T0 + 6 * H)]
    ) == [
        (T0, T0 + 3 * H),
        (T0 + 5 * H, T0 + 6 * H),
    ]


def test_it_skips_a_failing_source_and_keeps_the_others(only_test_sources, caplog):
    @busy_source("good")
    def good(query):
        return [(T0, T0 + H)]

    @busy_source("broken", covers=lambda company_id: 1 / 0)
    def broken(query):
        raise RuntimeError("down")

    query = BusyQuery(1, T0, T0 + 8 * H)
    assert busy_intervals(query) == [(T0, T0 + H)]
    assert "busy-time source broken failed" in caplog.text
    assert busy_time.tenant_has_busy_time(1) is True  # "good" may cover it; "broken" is logged
    forget_source("good")
    assert busy_time.tenant_has_busy_time(1) is False


def test_it_leaves_out_only_the_slots_that_overlap_busy_time(only_test_sources):
    @busy_source("one")
    def one(query):
        return [(T0 + H, T0 + 2 * H)]

    slots = [
        (T0 + i * 30 * dt.timedelta(minutes=1), T0 + (i + 1) * 30 * dt.timedelta(minutes=1)) for i in range(6)
    ]
    kept = without_busy(slots, BusyQuery(1, T0, T0 + 3 * H), lambda s: s)
    assert kept == [slots[0], slots[1], slots[4], slots[5]]
