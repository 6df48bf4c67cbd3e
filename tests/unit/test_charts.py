"""The server-drawn SVG charts: well-formed XML, accessible (title, desc, text labels, not colour alone), and bars
whose lengths are proportional to their values."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from gateway.web import charts

SVG = "{http://www.w3.org/2000/svg}"
SERIES = [charts.Series("Committed", "committed"), charts.Series("Delivered <&>", "delivered", pattern="stripes")]


def _chart(rows: list[charts.Row]) -> ET.Element:
    svg = charts.bar_chart("chart-test", "Value by category", "Education: 100; health: 40", SERIES, rows,
                           value_text=lambda value: f"{value} yuan", empty_text="Nothing here")
    return ET.fromstring(str(svg))


def test_the_chart_is_well_formed_and_accessible() -> None:
    root = _chart([charts.Row("Education & schools", (Decimal("100"), Decimal("50"))),
                   charts.Row("Health", (Decimal("40"), Decimal("0")))])
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-test-title chart-test-desc"
    assert root.find(f"{SVG}title").text == "Value by category"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "Education: 100; health: 40"  # type: ignore[union-attr]
    texts = [element.text for element in root.iter(f"{SVG}text")]
    # Every value is written out, every series named in words (the second also striped, not only coloured).
    assert {"100 yuan", "50 yuan", "40 yuan", "0 yuan", "Committed", "Delivered <&>"} <= set(texts)
    assert "Health" in texts and any(text and text.startswith("Education &") for text in texts)  # escaped, then unescaped
    long = _chart([charts.Row("A very long category name that cannot fit", (1, 2))])
    label = next(element for element in long.iter(f"{SVG}text") if element.get("class") == "label")
    assert label.text is not None and label.text.endswith("…") and len(label.text) < 30
    assert long.find(f".//{SVG}g/{SVG}title").text == "A very long category name that cannot fit"  # type: ignore[union-attr]
    striped = [bar for bar in root.iter(f"{SVG}rect") if "delivered" in (bar.get("class") or "")]
    assert striped and all(bar.get("fill") == "url(#chart-test-stripes)" for bar in striped)
    assert root.find(f".//{SVG}pattern[@id='chart-test-stripes']") is not None


def test_bar_lengths_are_proportional_to_the_values() -> None:
    values = [(Decimal("1000"), Decimal("250")), (Decimal("500"), Decimal("0")), (Decimal("125.5"), Decimal("1000"))]
    root = _chart([charts.Row(f"row {index}", pair) for index, pair in enumerate(values)])
    bars = [bar for bar in root.iter(f"{SVG}rect") if (bar.get("class") or "").startswith("value-bar ")]
    assert len(bars) == 6
    widths = [float(bar.get("width") or "nan") for bar in bars]
    flat = [float(value) for pair in values for value in pair]
    assert max(widths) == charts.PLOT_WIDTH  # the largest fills the plot
    for width, value in zip(widths, flat, strict=True):
        assert abs(width - value / 1000 * charts.PLOT_WIDTH) < 0.01
    assert {float(bar.get("x") or "nan") for bar in bars} == {float(charts.LABEL_WIDTH)}  # all from the same zero
    assert [bar.get("data-value") for bar in bars] == [str(value) for pair in values for value in pair]


def test_an_empty_chart_says_so_and_nothing_is_drawn_for_zero() -> None:
    root = _chart([])
    assert [element.text for element in root.iter(f"{SVG}text") if element.get("class") == "empty"] == ["Nothing here"]
    assert charts.bar_length(0, 0) == 0.0
    assert charts.bar_length(Decimal("-5"), Decimal("10")) == 0.0
