"""Charts drawn on the server as inline SVG: no script, no library, nothing fetched.

A grouped horizontal bar chart: one row per item (a category, a county, a year), one bar per series
(e.g. value committed and value delivered). Accessible by construction: `role="img"` with a <title>
and a <desc> that says what the chart shows, every bar's value written beside it as text, and the series
told apart by a pattern and by the legend's words, never by colour alone. The numbers behind it are in
the tables next to it; this module only draws them (lengths proportional to the values, zero at the left).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

Number = Decimal | int | float

WIDTH = 480
LABEL_WIDTH = 110
VALUE_WIDTH = 110  # room for the value written after the longest bar
BAR_HEIGHT = 14
BAR_GAP = 3
ROW_GAP = 12
TOP = 34  # the legend
PLOT_WIDTH = WIDTH - LABEL_WIDTH - VALUE_WIDTH


@dataclass(frozen=True, slots=True)
class Series:
    """One bar of each row: its legend text and how it is drawn (a CSS class, and a pattern or none)."""

    name: str
    css_class: str
    pattern: str = "solid"  # "solid" or "stripes": the second series is striped, so print in grey still tells them apart


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    values: Sequence[Number]


def _id(prefix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", prefix) or "chart"


def text_width(text: str) -> int:
    """About how wide a text is drawn at the chart's size: CJK characters twice as wide as Latin ones."""
    return sum(13 if ord(char) > 0x2E80 else 7 for char in text)


def _short(label: str) -> str:
    """The label as it fits left of the bars; cut with '…' when longer (the row's <title> keeps it whole)."""
    room = LABEL_WIDTH - 12
    if text_width(label) <= room:
        return label
    while label and text_width(label) + 13 > room:
        label = label[:-1]
    return label.rstrip() + "…"


def bar_length(value: Number, largest: Number) -> float:
    """The bar's length in the plot: proportional to the value, the largest filling the plot; negatives as 0."""
    if largest <= 0 or value <= 0:
        return 0.0
    return round(float(value) / float(largest) * PLOT_WIDTH, 2)


def bar_chart(
    chart_id: str, title: str, description: str, series: Sequence[Series], rows: Sequence[Row],
    value_text: Callable[[Number], str], empty_text: str = "",
) -> Markup:
    """The SVG element, safe to put into a page as it is (every text is escaped here)."""
    ident = _id(chart_id)
    largest = max((value for row in rows for value in row.values), default=0)
    per_row = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP + ROW_GAP
    height = TOP + max(len(rows), 1) * per_row + 6
    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" id={quoteattr(ident)} role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        "<defs>",
        f'<pattern id="{ident}-stripes" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" class="stripe-bg"/><rect width="3" height="6" class="stripe"/></pattern>',
        "</defs>",
    ]
    # Legend: a swatch drawn like the bars, and the series' name in words.
    x = LABEL_WIDTH
    for item in series:
        fill = f' fill="url(#{ident}-stripes)"' if item.pattern == "stripes" else ""
        parts.append(f'<rect class="swatch {escape(item.css_class)}" x="{x}" y="8" width="14" height="14"{fill}/>')
        parts.append(f'<text class="legend" x="{x + 20}" y="20">{escape(item.name)}</text>')
        x += 20 + text_width(item.name) + 24
    if not rows:
        parts.append(f'<text class="empty" x="{LABEL_WIDTH}" y="{TOP + 14}">{escape(empty_text)}</text>')
    y = TOP
    for index, row in enumerate(rows):
        parts.append(f'<g class="row" data-row="{index}">')
        parts.append(f"<title>{escape(row.label)}</title>")
        label_y = y + (len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP) / 2 + 5
        parts.append(f'<text class="label" x="{LABEL_WIDTH - 8}" y="{label_y:.1f}" text-anchor="end">{escape(_short(row.label))}</text>')
        for item, value in zip(series, row.values, strict=True):
            length = bar_length(value, largest)
            fill = f' fill="url(#{ident}-stripes)"' if item.pattern == "stripes" else ""
            parts.append(
                f'<rect class="value-bar {escape(item.css_class)}" x="{LABEL_WIDTH}" y="{y}" width="{length}" '
                f'height="{BAR_HEIGHT}" data-value="{escape(str(value))}"{fill}>'
                f"<title>{escape(item.name)}: {escape(value_text(value))}</title></rect>"
            )
            parts.append(f'<text class="value" x="{LABEL_WIDTH + length + 6}" y="{y + BAR_HEIGHT - 3}">'
                         f"{escape(value_text(value))}</text>")
            y += BAR_HEIGHT + BAR_GAP
        y += ROW_GAP - BAR_GAP
        parts.append("</g>")
    parts.append(f'<line class="axis" x1="{LABEL_WIDTH}" y1="{TOP - 4}" x2="{LABEL_WIDTH}" y2="{max(y, TOP + 20)}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
