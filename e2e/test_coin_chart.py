"""The coin chart in a browser: a true time axis on every range, real candles, theme colours, tiny prices' axis."""

from decimal import Decimal
from itertools import pairwise
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from market.demo.snapshot import load_snapshot
from market.templatetags.market_tags import price as price_text

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RANGES = ["1", "7", "30", "90", "365", "max"]
CHART_ASSETS = {"/static/vendor/lightweight-charts-4.2.3.min.js", "/static/js/charts.js", "/static/js/coin_chart.js"}

# What the chart holds: its series' drawn points, where each lands on the time axis, and the axis' logical span.
DRAWN = """
(element) => {
  const {chart, series} = window.CryptoDeskCharts.chartFor(element);
  const scale = chart.timeScale();
  const data = series[0].data();
  return {
    series: series.length,
    data: data,
    x: data.map((point) => scale.timeToCoordinate(point.time)),
    logical: scale.getVisibleLogicalRange(),
  };
}
"""
# The theme colours the chart paints with now, and the CSS variables they must match.
PAINT = """
(element) => {
  const {chart, series} = window.CryptoDeskCharts.chartFor(element);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return {
    text: chart.options().layout.textColor, grid: chart.options().grid.horzLines.color,
    line: series[0].options().lineColor,
    want: {text: css("--muted"), grid: css("--border"), line: css("--accent")},
  };
}
"""
# The price axis' visible top and bottom, as its labels print them, and the step it ticks in.
PRICE_AXIS = """
(element) => {
  const {chart, series} = window.CryptoDeskCharts.chartFor(element);
    const top = series[0].coordinateToPrice(10), bottom = series[0].coordinateToPrice(element.clientHeight - 60);
  const format = series[0].options().priceFormat;
  return {top: top, bottom: bottom, labels: [format.formatter(top), format.formatter(bottom)],
          min_move: format.minMove, axis_width: chart.priceScale("right").width()};
}
"""


def show(page: Page, button: Locator, days: str, kind: str) -> dict:
    """Click a chart control; returns the chart data the page fetched for it (and checks what it asked for)."""

    def is_chart_data(response) -> bool:
        parts = urlsplit(response.url)
        return parts.path.endswith("/chart/") and parse_qs(parts.query) == {"days": [days], "kind": [kind]}

    with page.expect_response(is_chart_data) as answer:
        button.click()
    assert answer.value.status == 200, answer.value.url
    expect(button).to_have_attribute("aria-pressed", "true")
    body = answer.value.json()
    expect(page.get_by_test_id("price-chart")).to_have_attribute("data-slots", str(len(body["points"])))
    return body


def assert_true_time_axis(page: Page, body: dict) -> None:
    """Uniform buckets in the data; on the chart, every stored point lands where its time says (gaps keep width)."""
    times = [point["time"] for point in body["points"]]
    assert len(times) > 1
    assert {later - earlier for earlier, later in pairwise(times)} == {body["bucket_s"]}
    drawn = page.get_by_test_id("price-chart").evaluate(DRAWN)
    assert drawn["series"] == 1
    valued = [point for point in body["points"] if len(point) > 1]
    assert [point["time"] for point in drawn["data"]] == [point["time"] for point in valued]
    assert len(valued) == body["stored"]
    span = drawn["logical"]["to"] - drawn["logical"]["from"]
    assert span >= len(times) - 1.5, f"the axis holds {span} slots, the data {len(times)}"
    x, t = drawn["x"], [point["time"] for point in valued]
    pixels_per_second = (x[-1] - x[0]) / (t[-1] - t[0])
    assert pixels_per_second > 0
    for (xa, ta), (xb, tb) in pairwise(zip(x, t, strict=True)):
        assert abs((xb - xa) - (tb - ta) * pixels_per_second) < 1.0, (ta, tb, xa, xb)


def test_every_range_draws_on_a_true_time_axis_with_real_candles(
    page: Page, page_guard: PageGuard, save_screenshot
) -> None:
    assert load_snapshot() is not None  # hourly points for a week, daily for the year before
    with page.expect_response(lambda r: "/markets/bitcoin/chart/?days=30&kind=line" in r.url) as first:
        page.goto("/markets/bitcoin/")
    chart = page.get_by_test_id("price-chart")
    expect(page.locator("[data-range='30']")).to_have_attribute("aria-pressed", "true")
    expect(chart).to_have_attribute("data-slots", str(len(first.value.json()["points"])))
    assert_true_time_axis(page, first.value.json())
    expect(page.locator("[data-chart-status]")).to_have_text("")
    expect(page.get_by_test_id("chart-note")).to_be_hidden()

    for days in RANGES:
        body = show(page, page.locator(f"[data-range='{days}']"), days, "line")
        assert_true_time_axis(page, body)
        expect(chart).to_have_attribute("data-points", str(body["stored"]))
        expect(page.get_by_test_id("chart-note")).to_be_hidden()
    save_screenshot(page, "coin-chart-max-line")

    # Candles: several stored points a bucket give real open, high, low and close; a lone close says so.
    candles = show(page, page.locator("[data-kind='candles']"), "max", "candles")
    for days in ["max", *RANGES[:-1]]:  # max first: what the chart shows now
        body = candles if days == "max" else show(page, page.locator(f"[data-range='{days}']"), days, "candles")
        assert_true_time_axis(page, body)
        drawn = chart.evaluate(DRAWN)["data"]
        sent = [point for point in body["points"] if "close" in point]
        assert [[d[k] for k in ("open", "high", "low", "close")] for d in drawn] == [
            [float(point[k]) for k in ("open", "high", "low", "close")] for point in sent
        ]
        note = page.get_by_test_id("chart-note")
        if body["single_close"]:
            expect(note).to_be_visible()
            expect(note).to_have_text(body["note"])
            assert "Only closing prices are stored" in body["note"]
        else:
            expect(note).to_be_hidden()
            assert all(Decimal(p["high"]) > Decimal(p["low"]) for p in sent)  # no flat dashes
        if days == "7":
            save_screenshot(page, "coin-chart-7d-candles")
    expect(page.locator("[data-chart-status]")).to_have_text("")
    assert page_guard.static_loaded >= CHART_ASSETS
    page_guard.assert_clean()


def test_chart_follows_the_theme_toggle_without_a_reload(page: Page, page_guard: PageGuard) -> None:
    assert load_snapshot() is not None
    page.goto("/markets/ethereum/")
    chart = page.get_by_test_id("price-chart")
    expect(chart).to_have_attribute("data-points", "191")  # 30 days: the hourly week and the daily days before
    page.evaluate("() => { window.sameDocument = true; }")
    before = chart.evaluate(PAINT)
    assert {key: before[key] for key in ("text", "grid", "line")} == before["want"]
    for _ in range(2):  # to the other theme and back
        page.locator("[data-theme-toggle]").click()
        now = chart.evaluate(PAINT)
        assert now["want"] != before["want"], "the theme did not change"
        assert {key: now[key] for key in ("text", "grid", "line")} == now["want"]
        before = now
    show(page, page.locator("[data-kind='candles']"), "30", "candles")
    page.locator("[data-theme-toggle]").click()  # a series drawn after a change follows the next one too
    up = chart.evaluate(
        """(element) => [window.CryptoDeskCharts.chartFor(element).series[0].options().upColor,
            getComputedStyle(document.documentElement).getPropertyValue("--up").trim()]"""
    )
    assert up[0] == up[1]
    assert page.evaluate("() => window.sameDocument") is True
    page_guard.assert_clean()


def test_tiny_prices_keep_their_axis_labels_formatted_as_the_page(page: Page, page_guard: PageGuard) -> None:
    assert load_snapshot() is not None
    page.goto("/markets/shiba-inu/")
    chart = page.get_by_test_id("price-chart")
    expect(chart).to_have_attribute("data-points", "191")
    shown = page.get_by_test_id("price").inner_text()
    assert shown.startswith("$0.0000")
    for days in ["7", "365"]:
        body = show(page, page.locator(f"[data-range='{days}']"), days, "line")
        axis = chart.evaluate(PRICE_AXIS)
        assert Decimal(str(axis["min_move"])) == Decimal(body["price_format"]["min_move"]) <= Decimal("0.000001")
        top, bottom = axis["labels"]
        assert top != bottom, axis  # the axis still tells prices apart
        assert top.startswith("$0.0000"), axis
        assert bottom.startswith("$0.0000"), axis
        assert axis["axis_width"] > 40, axis

    # The chart's money is the page's: the same text as the price filter prints.
    samples = ["64123.456", "1", "0.99", "0.5", "0.012346", "0.00001234", "0.000000012346", "0", "1234567.891"]
    printed = page.evaluate("(values) => values.map(window.CryptoDeskCharts.formatPrice)", samples)
    assert printed == [price_text(value) for value in samples]
    assert page.evaluate("() => window.CryptoDeskCharts.formatMoney(-12.3)") == "\u2212$12.30"
    page_guard.assert_clean()
