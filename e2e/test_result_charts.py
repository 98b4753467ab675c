"""Result charts in a browser, read from what the page fed the chart library and what it drew: a backtest's
drawdown is shaded between zero and the curve, its legend shows the worst fall with its date, colours follow
the theme toggle without a reload; a portfolio's value chart has a monotonic, evenly spaced time axis on every
range, and its risk panel says why a figure is missing."""

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conftest import PASSWORD
from market.demo.snapshot import load_snapshot
from market.models import Coin
from portfolios import services as portfolio_services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot, Trade
from strategies import services
from strategies.models import Backtest

from .conftest import PageGuard
from .conftest import log_in as log_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MINUS = "\u2212"

# What the page fed each series of the chart drawn in `element` (through the shared chart helpers).
FED = """
(element) => window.CryptoDeskCharts.chartFor(element).series.map((series) => ({
  type: series.seriesType(),
  options: series.options(),
  data: series.data().map((point) => ({ time: point.time, value: point.value })),
}))
"""

# Pixels of the drawdown pane at the deepest fall, with the grid and the buy-and-hold line out of the way:
# above the zero line, halfway between zero and the curve, and below the curve.
DRAWDOWN_PIXELS = """
async (element) => {
  const { chart, series } = window.CryptoDeskCharts.chartFor(element);
  const [drawdown, hold] = series;
  hold.applyOptions({ visible: false });
  chart.applyOptions({ grid: { horzLines: { visible: false }, vertLines: { visible: false } } });
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const data = drawdown.data();
  const deepest = data.reduce((low, point) => (point.value < low.value ? point : low), data[0]);
  const x = Math.round(chart.timeScale().timeToCoordinate(deepest.time));
  const zero = drawdown.priceToCoordinate(0);
  const low = drawdown.priceToCoordinate(deepest.value);
  const canvases = [...element.querySelectorAll("canvas")];
  const widest = Math.max(...canvases.map((canvas) => canvas.width));
  const pane = canvases.find((canvas) => canvas.width === widest);
  const ratio = pane.width / pane.getBoundingClientRect().width;
  const alpha = (y) => pane.getContext("2d").getImageData(Math.round(x * ratio), Math.round(y * ratio), 1, 1).data[3];
  return {
    span: low - zero,
    above: alpha(Math.max(1, zero - 6)),
    between: [0.25, 0.5, 0.75].map((share) => alpha(zero + (low - zero) * share)),
    below: alpha(low + 6),
  };
}
"""

CSS_VAR = "(name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim()"


def log_in(page: Page, user) -> None:
    log_in_as(page, user.email, PASSWORD)


def day_label(moment: datetime | date) -> str:
    """A UTC day as the legends and the risk panel print it: "Mar 3, 2026"."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC)
    return f"{moment:%b} {moment.day}, {moment.year}"


@pytest.fixture
def backtest(alice) -> Backtest:
    """A daily SMA crossover over the demo year: it falls below its peaks, so the drawdown has something to shade."""
    load_snapshot()
    strategy = services.create_strategy(
        owner=alice,
        name="Drawdown cross",
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        coin=Coin.objects.get(pk="bitcoin"),
    )
    end = timezone.now()
    queued = services.queue_backtest(
        strategy=strategy,
        user=alice,
        start=end - timedelta(days=300),
        end=end,
        initial_capital=Decimal(10_000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    services.run_backtest(queued.pk)  # a no-op when the task already ran as the row committed (eager tasks)
    done = Backtest.objects.get(pk=queued.pk)
    assert done.status == Backtest.Status.SUCCEEDED, done.error
    assert done.metrics["max_drawdown"] > 0.01
    return done


def open_backtest(page: Page, backtest: Backtest) -> None:
    page.goto(f"/backtests/{backtest.pk}/")
    expect(page.get_by_test_id("drawdown-chart")).to_have_attribute("data-points", str(len(backtest.equity_curve)))


def test_the_drawdown_is_shaded_between_zero_and_the_curve(
    page: Page, page_guard: PageGuard, alice, backtest, save_screenshot
):
    log_in(page, alice)
    open_backtest(page, backtest)
    save_screenshot(page, "result-charts-backtest")
    chart = page.get_by_test_id("drawdown-chart")
    fed = chart.evaluate(FED)
    assert [series["type"] for series in fed] == ["Baseline", "Line"]
    values = [point["value"] for point in fed[0]["data"]]
    assert max(values) == 0  # a fall from the running peak: never above zero
    assert min(values) == pytest.approx(-backtest.metrics["max_drawdown"] * 100, rel=1e-9)

    pixels = chart.evaluate(DRAWDOWN_PIXELS)
    assert pixels["span"] > 20, pixels  # the curve is well below the zero line
    assert all(alpha > 0 for alpha in pixels["between"]), pixels  # shaded between zero and the curve
    assert pixels["above"] == 0, pixels  # nothing above zero
    assert pixels["below"] == 0, pixels  # nor under the curve
    page_guard.assert_clean()


def test_the_drawdown_legend_shows_the_worst_fall_with_its_date(page: Page, page_guard: PageGuard, alice, backtest):
    log_in(page, alice)
    open_backtest(page, backtest)
    worst = Decimal(str(backtest.metrics["max_drawdown"])) * 100
    trough = datetime.fromtimestamp(backtest.metrics["max_drawdown_at"] / 1000, tz=UTC)
    legend = page.locator('[data-legend="drawdown"]')
    expect(legend).to_have_text(re.compile(rf"^{MINUS}\d+\.\d\d%$"))
    shown = Decimal(legend.inner_text().lstrip(MINUS).rstrip("%"))
    assert abs(shown - worst) <= Decimal("0.005") + Decimal("1e-9")
    card = page.get_by_test_id("metrics").locator('[data-metric="max_drawdown"] .metric-value')
    expect(card).to_have_text(legend.inner_text())  # the card and the legend agree
    expect(page.locator('[data-legend-note="drawdown"]')).to_have_text(f"worst, {day_label(trough)}")

    # Buy and hold: its own worst fall, from the curve the chart drew.
    fed = page.get_by_test_id("drawdown-chart").evaluate(FED)
    hold = min(fed[1]["data"], key=lambda point: point["value"])
    hold_text = f"{MINUS}{abs(hold['value']):.2f}%"
    expect(page.locator('[data-legend="hold-drawdown"]')).to_have_text(hold_text)
    hold_day = day_label(datetime.fromtimestamp(hold["time"], tz=UTC))
    expect(page.locator('[data-legend-note="hold-drawdown"]')).to_have_text(f"worst, {hold_day}")

    # Hovering a bar shows that bar's values; leaving the chart shows the worst again.
    drawdown_chart = page.get_by_test_id("drawdown-chart")
    drawdown_chart.scroll_into_view_if_needed()
    box = drawdown_chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2, steps=5)
    expect(page.locator('[data-legend-note="drawdown"]')).to_have_text("")
    expect(legend).not_to_have_text("—")
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] + 40, steps=5)  # below the chart
    expect(page.locator('[data-legend-note="drawdown"]')).to_have_text(f"worst, {day_label(trough)}")
    page_guard.assert_clean()


def test_backtest_chart_colours_follow_the_theme_toggle(page: Page, page_guard: PageGuard, alice, backtest):
    log_in(page, alice)
    open_backtest(page, backtest)
    chart = page.get_by_test_id("drawdown-chart")
    root = page.locator("html")
    before = chart.evaluate(FED)[0]["options"]["bottomLineColor"]
    assert before == page.evaluate(CSS_VAR, "--down")
    page.locator("[data-theme-toggle]").click()
    expect(root).to_have_attribute("data-theme", "dark")
    after_down = page.evaluate(CSS_VAR, "--down")
    assert after_down != before
    fed = chart.evaluate(FED)
    assert fed[0]["options"]["bottomLineColor"] == after_down
    assert fed[0]["options"]["bottomFillColor1"] == page.evaluate(CSS_VAR, "--drawdown-fill")
    text_color = page.get_by_test_id("equity-chart").evaluate(
        "(element) => window.CryptoDeskCharts.chartFor(element).chart.options().layout.textColor"
    )
    assert text_color == page.evaluate(CSS_VAR, "--muted")
    equity = page.get_by_test_id("equity-chart").evaluate(FED)
    assert equity[0]["options"]["color"] == page.evaluate(CSS_VAR, "--accent")
    page_guard.assert_clean()


# --- a portfolio's value chart and risk panel ---------------------------------------------------------------

RANGES = {"7": 3600, "30": 3600, "90": 86400, "365": 86400, "all": 86400}
FETCH_JSON = "async (url) => (await fetch(url, { headers: { Accept: 'application/json' } })).json()"


@pytest.fixture
def desk(alice):
    """A portfolio opened 120 days ago on the demo market (a year of daily prices, a week of hourly ones), with
    trades spread over its life."""
    load_snapshot()
    portfolio = portfolio_services.create_portfolio(owner=alice, name="Long desk", starting_cash=Decimal(50_000))
    now = timezone.now()
    opened = now - timedelta(days=120)
    Portfolio.objects.filter(pk=portfolio.pk).update(created_at=opened)
    CashTransfer.objects.filter(portfolio=portfolio).update(created_at=opened)
    for coin, side, quantity, days_ago in [
        ("bitcoin", "buy", "0.4", 100),
        ("ethereum", "buy", "3", 20),
        ("bitcoin", "sell", "0.1", 3),
    ]:
        order, _ = portfolio_services.place_order(
            user=alice, portfolio_id=portfolio.pk, coin_id=coin, side=side, type="market", quantity=Decimal(quantity)
        )
        Trade.objects.filter(order=order).update(executed_at=now - timedelta(days=days_ago))
    PortfolioSnapshot.objects.filter(portfolio=portfolio).delete()
    return Portfolio.objects.get(pk=portfolio.pk)


def test_every_range_of_the_value_chart_has_a_monotonic_evenly_spaced_time_axis(
    page: Page, page_guard: PageGuard, alice, desk
):
    log_in(page, alice)
    page.goto(f"/portfolios/{desk.pk}/")
    chart = page.get_by_test_id("performance-chart")
    expect(chart).to_have_attribute("data-interval", "3600")  # the default range: 30 days, hourly
    for days, step in RANGES.items():
        page.locator(f'[data-chart-range="performance-chart"] button[data-days="{days}"]').click()
        body = page.evaluate(FETCH_JSON, f"/api/v1/portfolios/{desk.pk}/history/?days={days}")
        expect(chart).to_have_attribute("data-interval", str(step))
        expect(chart).to_have_attribute("data-points", str(len(body["points"])))
        fed = chart.evaluate(FED)[0]
        times = [point["time"] for point in fed["data"]]
        assert len(times) == len(body["points"]) >= 8, days
        assert {later - earlier for earlier, later in itertools.pairwise(times)} == {step}, days
        assert times[-1] == int(datetime.fromisoformat(body["points"][-1]["time"]).timestamp()), days
        values = [Decimal(str(point["value"])) for point in fed["data"]]
        assert values == [Decimal(point["total_value"]) for point in body["points"]], days
    expected_days = (timezone.now().date() - desk.created_at.date()).days + 1
    assert len(times) == expected_days  # "all": every day since the portfolio opened, not only snapshot days
    page_guard.assert_clean()


def test_the_risk_panel_says_why_a_figure_is_missing(page: Page, page_guard: PageGuard, alice, desk, save_screenshot):
    fresh = portfolio_services.create_portfolio(owner=alice, name="Fresh desk", starting_cash=Decimal(1_000))
    log_in(page, alice)
    page.goto(f"/portfolios/{desk.pk}/")
    risk = page.get_by_test_id("risk")
    expect(risk.locator('[data-risk="volatility"] dd').first).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    expect(risk.locator(".risk-missing")).to_have_count(0)

    page.goto(f"/portfolios/{fresh.pk}/")
    risk = page.get_by_test_id("risk")
    tomorrow = timezone.now().astimezone(UTC).date() + timedelta(days=1)
    expect(risk.get_by_test_id("risk-missing-volatility")).to_have_text(
        f"Needs at least 2 daily returns; 1 more after 1 more day of history (on {day_label(tomorrow)})."
    )
    expect(risk.get_by_test_id("risk-missing-largest_holding_pct")).to_have_text(
        "No coins held: it appears with your first buy."
    )
    expect(risk.locator('[data-risk="volatility"] dd').first).to_have_text("—")
    save_screenshot(page, "result-charts-fresh-portfolio")
    page_guard.assert_clean()


def test_the_value_chart_follows_the_theme_toggle(page: Page, page_guard: PageGuard, alice, desk):
    log_in(page, alice)
    page.goto(f"/portfolios/{desk.pk}/")
    chart = page.get_by_test_id("performance-chart")
    expect(chart).to_have_attribute("data-interval", "3600")
    before = chart.evaluate(FED)[0]["options"]["lineColor"]
    page.locator("[data-theme-toggle]").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    accent = page.evaluate(CSS_VAR, "--accent")
    assert accent != before
    options = chart.evaluate(FED)[0]["options"]
    assert (options["lineColor"], options["topColor"]) == (accent, page.evaluate(CSS_VAR, "--chart-fill"))
    page_guard.assert_clean()
