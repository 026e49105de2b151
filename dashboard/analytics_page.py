"""What the Analytics page shows, built from the analytics operations' answers: headline
figures with their change, and inline SVG charts (dashboard.svg_charts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import svg_charts

# The headline figures (get_overview's), each taken from the operation that the page calls for
# its own section anyway: the page does not run get_overview, whose statement would read the
# calls, appointments and invoices a second time. (operation, figure, label, kind)
HEADLINES = [
    ("get_call_funnel", "calls", "Calls", ""),
    ("get_call_funnel", "booking_rate", "Calls → booking", "%"),
    ("get_call_funnel", "missed_rate", "Missed calls", "%"),
    ("get_call_funnel", "unknown_caller_rate", "Unknown callers", "%"),
    ("get_appointment_stats", "appointments", "Appointments", ""),
    ("get_appointment_stats", "cancellations", "Cancellations", ""),
    ("get_appointment_stats", "no_shows", "No-shows", ""),
    ("get_customer_cohorts", "new_customers", "New customers", ""),
    ("get_revenue", "revenue", "Revenue", "money"),
]


def _shown(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "%":
        return f"{value * 100:.1f} %"
    if kind == "money":
        return f"{value:,.2f}"
    return f"{value:,}"


def headline_cards(answers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    cards = []
    currency = answers["get_revenue"]["currency"]
    for operation, key, label, kind in HEADLINES:
        fig = answers[operation][key]
        pct = fig["change_pct"]
        cards.append(
            {
                "label": label,
                "value": _shown(fig["current"], kind) + (f" {currency}" if kind == "money" else ""),
                "previous": _shown(fig["previous"], kind),
                "change": "" if pct is None else f"{pct:+.1f} %",
                "direction": "" if not pct else ("up" if pct > 0 else "down"),
            }
        )
    return cards


def _pairs(data: dict[str, Any], names: list[tuple[str, str]], *, label: str):
    return svg_charts.paired_bars(
        [title for _, title in names],
        [data[key]["current"] for key, _ in names],
        [data[key]["previous"] for key, _ in names],
        label=label,
    )


def page_context(answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Charts and tables from the data of each operation (all of them answered)."""
    funnel = answers["get_call_funnel"]
    appts, util = answers["get_appointment_stats"], answers["get_utilisation"]
    money, cohorts = answers["get_revenue"], answers["get_customer_cohorts"]
    messaging = answers["get_messaging"]
    calls_chart = _pairs(
        funnel,
        [("calls", "Calls"), ("answered", "Answered"), ("transferred", "Transferred"), ("missed", "Missed"),
         ("booked", "Booked"), ("unknown_callers", "Unknown")],
        label="Calls by how they were handled, this period against the previous one",
    )  # fmt: skip
    appts_chart = _pairs(
        appts,
        [("appointments", "Appointments"), ("visits", "Visits"), ("cancellations", "Cancelled"),
         ("no_shows", "No-shows"), ("bookings", "Booked in period")],
        label="Appointments, this period against the previous one",
    )  # fmt: skip
    revenue_chart = svg_charts.paired_bars(
        [row["name"] or "not linked" for row in money["by_branch"]],
        [row["revenue"]["current"] for row in money["by_branch"]],
        [row["revenue"]["previous"] for row in money["by_branch"]],
        label="Revenue per branch, this period against the previous one",
    )
    return {
        "period": funnel["period"],
        "currency": money["currency"],
        "cards": headline_cards(answers),
        "funnel": funnel["funnel"],
        "durations": {k: funnel[k] for k in ("avg_duration_sec", "median_duration_sec", "p90_duration_sec")},
        "calls_chart": calls_chart,
        "heatmap": svg_charts.heatmap(funnel["by_hour"], value="calls", label="Calls per weekday and hour"),
        "appts": appts,
        "appts_chart": appts_chart,
        "staff_chart": svg_charts.hbars(
            [(s["name"], s["utilisation"]["current"]) for s in util["staff"]],
            label="Utilisation per staff member (booked against working minutes)",
            unit="%",
        ),
        "branch_chart": svg_charts.hbars(
            [(b["name"] or "no branch", b["utilisation"]["current"]) for b in util["branches"]],
            label="Utilisation per branch",
            unit="%",
        ),
        "staff_without_hours": len(util["staff_without_hours"]),
        "money": money,
        "revenue_chart": revenue_chart,
        "cohorts": cohorts,
        "messaging": messaging,
        "no_show_chart": svg_charts.paired_bars(
            ["Reminded", "Not reminded"],
            [_percent(messaging[g]["no_show_rate"]["current"]) for g in ("reminded", "not_reminded")],
            [_percent(messaging[g]["no_show_rate"]["previous"]) for g in ("reminded", "not_reminded")],
            label="No-show rate (%) of reminded against not reminded appointments, this period and the one before",
        ),
    }


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def presets(today: dt.date) -> list[tuple[str, str, str]]:
    """(label, date_from, date_to) for the period picker's quick choices."""
    first = today.replace(day=1)
    last_month_end = first - dt.timedelta(days=1)
    return [
        ("Last 7 days", str(today - dt.timedelta(days=6)), str(today)),
        ("Last 30 days", str(today - dt.timedelta(days=29)), str(today)),
        ("This month", str(first), str(today)),
        ("Last month", str(last_month_end.replace(day=1)), str(last_month_end)),
        ("Last 90 days", str(today - dt.timedelta(days=89)), str(today)),
        ("Last 365 days", str(today - dt.timedelta(days=364)), str(today)),
        ("Next 14 days", str(today), str(today + dt.timedelta(days=13))),
    ]
