"""Small inline SVG charts drawn on the server (no script, no CDN): bars for a period against the
one before it, a weekday x hour heat map, and horizontal bars. Every text is escaped; each chart
carries role="img", an aria-label and a <title> per mark so that it reads without seeing it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

CURRENT, PREVIOUS = "#1f77b4", "#aec7e8"
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}" if isinstance(value, int) else f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, body: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308 - every text inside was escaped above
        f'<svg class="a-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def paired_bars(
    labels: Sequence[str], current: Sequence[float | None], previous: Sequence[float | None], *, label: str
) -> SafeString:
    """One pair of bars per label: the period (dark) and the previous period (light)."""
    width, height, pad_l, pad_b, pad_t = 640, 200, 44, 34, 16
    top = max([v or 0 for v in (*current, *previous)] + [1])
    inner_w, inner_h = width - pad_l - 8, height - pad_t - pad_b
    group = inner_w / max(len(labels), 1)
    bar = min(24.0, group * 0.4)
    body = [
        f'<text x="{pad_l - 6}" y="{pad_t + 4}" text-anchor="end">{_fmt(top)}</text>',
        f'<text x="{pad_l - 6}" y="{pad_t + inner_h}" text-anchor="end">0</text>',
        f'<line x1="{pad_l}" x2="{width - 8}" y1="{pad_t + inner_h}" y2="{pad_t + inner_h}" class="axis"/>',
    ]
    for i, name in enumerate(labels):
        x0 = pad_l + group * i + (group - 2 * bar) / 2
        for j, (value, color, which) in enumerate(
            ((current[i], CURRENT, "period"), (previous[i], PREVIOUS, "previous period"))
        ):
            h = inner_h * (value or 0) / top
            body.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{pad_t + inner_h - h:.1f}" width="{bar - 2:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{escape(name)}, {which}: {_fmt(value)}</title></rect>'
            )
        body.append(
            f'<text x="{pad_l + group * i + group / 2:.1f}" y="{height - pad_b + 14}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
    body.append(f'<rect x="{pad_l}" y="{height - 12}" width="10" height="10" fill="{CURRENT}"/>')
    body.append(f'<text x="{pad_l + 14}" y="{height - 3}">period</text>')
    body.append(f'<rect x="{pad_l + 70}" y="{height - 12}" width="10" height="10" fill="{PREVIOUS}"/>')
    body.append(f'<text x="{pad_l + 84}" y="{height - 3}">previous period</text>')
    return _svg(width, height, label, body)


def heatmap(cells: Sequence[dict], *, value: str, label: str) -> SafeString:
    """A 7 x 24 grid of weekday (ISO, 1 = Monday) by hour, darker for more."""
    width, height, pad_l, pad_t, cell_w, cell_h = 640, 190, 36, 18, 24.5, 22
    top = max([c[value] for c in cells] + [1])
    body = [
        f'<text x="{pad_l + h * cell_w + cell_w / 2:.1f}" y="{pad_t - 5}" text-anchor="middle">{h}</text>'
        for h in range(0, 24, 3)
    ]
    body += [
        f'<text x="{pad_l - 6}" y="{pad_t + d * cell_h + 15}" text-anchor="end">{WEEKDAYS[d]}</text>'
        for d in range(7)
    ]
    for c in cells:
        share = c[value] / top
        x, y = pad_l + c["hour"] * cell_w, pad_t + (c["weekday"] - 1) * cell_h
        body.append(
            f'<rect x="{x:.1f}" y="{y}" width="{cell_w - 1.5:.1f}" height="{cell_h - 1.5}" '
            f'fill="{CURRENT}" fill-opacity="{0.12 + 0.88 * share:.2f}">'
            f"<title>{WEEKDAYS[c['weekday'] - 1]} {c['hour']:02d}:00: {c[value]} {escape(value)}</title></rect>"
        )
    return _svg(width, height, label, body)


def hbars(rows: Sequence[tuple[str, float | None]], *, label: str, unit: str = "") -> SafeString:
    """Horizontal bars, one per row (name, value); values up to 1.0 read as shares when unit is %."""
    width, row_h, pad_l = 640, 22, 150
    height = max(len(rows), 1) * row_h + 8
    top = 1.0 if unit == "%" else max([v or 0 for _, v in rows] + [1])
    body = []
    for i, (name, value) in enumerate(rows):
        y = 4 + i * row_h
        w = (width - pad_l - 70) * min((value or 0) / top, 1.0)
        shown = (
            "no working hours"
            if value is None
            else (f"{value * 100:.1f} %" if unit == "%" else _fmt(value) + unit)
        )
        body.append(f'<text x="{pad_l - 6}" y="{y + 15}" text-anchor="end">{escape(name[:24])}</text>')
        body.append(
            f'<rect x="{pad_l}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{CURRENT}">'
            f"<title>{escape(name)}: {escape(shown)}</title></rect>"
        )
        body.append(f'<text x="{pad_l + w + 6:.1f}" y="{y + 15}">{escape(shown)}</text>')
    return _svg(width, height, label, body)
