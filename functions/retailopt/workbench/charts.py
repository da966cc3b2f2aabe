"""Charts of the workbench as inline SVG drawn on the server.

No script and no style attribute (the Content-Security-Policy allows neither inline code nor
inline style): shapes carry presentation attributes, every text is escaped, and each chart has a
title and description for screen readers beside the table of its numbers on the page. They
print as they show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 30


@dataclass(frozen=True)
class Line:
    name: str
    points: Sequence[tuple[date, float]]
    colour: str
    dash: str | None = None  # an SVG stroke-dasharray
    width: float = 1.6
    step: bool = False  # a level held from one day to the next (stock)


@dataclass(frozen=True)
class Band:
    name: str
    points: Sequence[tuple[date, float, float]]  # day, low, high
    colour: str


@dataclass(frozen=True)
class Rule:
    name: str
    value: float
    colour: str
    dash: str = "6 4"


@dataclass
class Chart:
    title: str
    description: str
    lines: list[Line] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    marker: date | None = None  # a day marked by a vertical line (the run date)
    marker_label: str = ""


def _nice_top(value: float) -> tuple[float, float]:
    """A round upper bound of the y axis and its tick step."""
    if value <= 0 or not math.isfinite(value):
        return 1.0, 0.25
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(value / step), step


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:,.1f}"


def render(chart: Chart) -> Markup:
    """The chart as an `<svg>` element, safe to put into a page as it is."""
    days = [d for line in chart.lines for d, _ in line.points] + [d for band in chart.bands for d, _, _ in band.points]
    if chart.marker:
        days.append(chart.marker)
    if not days:
        return Markup("")
    first, last = min(days), max(days)
    span = max((last - first).days, 1)
    values = ([v for line in chart.lines for _, v in line.points] + [h for band in chart.bands for _, _, h in band.points]
              + [r.value for r in chart.rules])
    top, step = _nice_top(max([v for v in values if v is not None and math.isfinite(v)], default=1.0) * 1.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return LEFT + plot_w * (day - first).days / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - max(min(value, top), 0) / top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
           'aria-labelledby="chart-title chart-desc">',
           f'<title id="chart-title">{escape(chart.title)}</title><desc id="chart-desc">{escape(chart.description)}</desc>']
    # Grid and axes.
    tick = 0.0
    while tick <= top + 1e-9:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#d9dee5" '
                   'stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="11" fill="#55606e">'
                   f'{escape(_fmt(tick))}</text>')
        tick += step
    day = first + timedelta(days=(7 - first.weekday()) % 7)  # Mondays
    while day <= last:
        out.append(f'<line x1="{x(day):.1f}" x2="{x(day):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#eef1f5" '
                   'stroke-width="1"/>')
        out.append(f'<text x="{x(day):.1f}" y="{HEIGHT - 10}" text-anchor="middle" font-size="11" fill="#55606e">'
                   f'{day:%b %d}</text>')
        day += timedelta(days=14 if span > 70 else 7)
    for band in chart.bands:
        if band.points:
            upper = " ".join(f"{x(d):.1f},{y(h):.1f}" for d, _, h in band.points)
            lower = " ".join(f"{x(d):.1f},{y(lo):.1f}" for d, lo, _ in reversed(band.points))
            out.append(f'<polygon points="{upper} {lower}" fill="{band.colour}" fill-opacity="0.18" stroke="none"/>')
    for rule in chart.rules:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(rule.value):.1f}" y2="{y(rule.value):.1f}" '
                   f'stroke="{rule.colour}" stroke-width="1.2" stroke-dasharray="{rule.dash}"/>')
    for line in chart.lines:
        if not line.points:
            continue
        coords: list[str] = []
        previous: float | None = None
        for d, v in line.points:
            if line.step and previous is not None:
                coords.append(f"{x(d):.1f},{y(previous):.1f}")
            coords.append(f"{x(d):.1f},{y(v):.1f}")
            previous = v
        dash = f' stroke-dasharray="{line.dash}"' if line.dash else ""
        out.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{line.colour}" '
                   f'stroke-width="{line.width}"{dash}/>')
    if chart.marker:
        out.append(f'<line x1="{x(chart.marker):.1f}" x2="{x(chart.marker):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                   'stroke="#1d2430" stroke-width="1"/>')
        out.append(f'<text x="{x(chart.marker) + 4:.1f}" y="{TOP + 10}" font-size="11" fill="#1d2430">'
                   f'{escape(chart.marker_label)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#55606e" stroke-width="1"/>')
    out.append("</svg>")
    return Markup("".join(out))


@dataclass(frozen=True)
class Visit:
    at: datetime  # local time of arrival
    label: str  # what a hover shows
    window: tuple[datetime, datetime] | None = None  # the store's receiving window that day (local)


@dataclass(frozen=True)
class Shift:
    label: str
    start: datetime
    end: datetime
    visits: Sequence[Visit]


ROW_H = 26


def timeline(shifts: Sequence[Shift], title: str, description: str) -> Markup:
    """One row per vehicle: its route from leaving to coming back, the receiving windows of the
    stores it delivers to (light bands) and each arrival (a dot, red when outside the store's
    window); hovering over a dot shows what it is (an SVG title)."""
    if not shifts:
        return Markup("")
    times = [t for s in shifts for t in (s.start, s.end)]
    times += [t for s in shifts for v in s.visits if v.window for t in v.window]
    first = min(times).replace(minute=0, second=0, microsecond=0)
    last = max(times)
    if last.minute or last.second:
        last = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hours = max((last - first).total_seconds() / 3600, 1.0)
    label_w, plot_w = 90, WIDTH - 90 - RIGHT - 24  # room for the last hour's label
    height = TOP + ROW_H * len(shifts) + BOTTOM

    def x(t: datetime) -> float:
        return label_w + plot_w * (t - first).total_seconds() / 3600 / hours

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" class="chart timeline" role="img" '
           'aria-labelledby="timeline-title timeline-desc">',
           f'<title id="timeline-title">{escape(title)}</title><desc id="timeline-desc">{escape(description)}</desc>']
    step = 1 if hours <= 14 else 2
    for h in range(0, int(math.ceil(hours)) + 1, step):
        t = first + timedelta(hours=h)
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{height - BOTTOM}" stroke="#eef1f5"/>')
        out.append(f'<text x="{x(t):.1f}" y="{height - 10}" text-anchor="middle" font-size="11" fill="#55606e">'
                   f'{t:%H:%M}</text>')
    for i, shift in enumerate(shifts):
        mid = TOP + ROW_H * i + ROW_H / 2
        out.append(f'<text x="{label_w - 8}" y="{mid + 4:.1f}" text-anchor="end" font-size="12" fill="#1d2430">'
                   f'{escape(shift.label)}</text>')
        for visit in shift.visits:
            if visit.window:
                out.append(f'<rect x="{x(visit.window[0]):.1f}" y="{mid - 9:.1f}" '
                           f'width="{max(x(visit.window[1]) - x(visit.window[0]), 1):.1f}" height="18" '
                           'fill="#1c6b35" fill-opacity="0.08"/>')
        out.append(f'<line x1="{x(shift.start):.1f}" x2="{x(shift.end):.1f}" y1="{mid:.1f}" y2="{mid:.1f}" '
                   'stroke="#8793a3" stroke-width="4" stroke-linecap="round"/>')
        for visit in shift.visits:
            late = visit.window is not None and not (visit.window[0] <= visit.at <= visit.window[1])
            colour = "#a3261b" if late else ("#1c6b35" if visit.window else "#0b5cad")
            out.append(f'<circle cx="{x(visit.at):.1f}" cy="{mid:.1f}" r="4.5" fill="{colour}" stroke="#fff" '
                       f'stroke-width="1"><title>{escape(visit.label)}</title></circle>')
    out.append("</svg>")
    return Markup("".join(out))
