"""Strategies in a browser: write an SMA crossover (a refused combination first), backtest it over the default
range, and read the results: metrics as the API reports them, both charts drawn, one table row per trade."""

import re
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import Page, expect

from conftest import PASSWORD
from market.demo.snapshot import load_snapshot
from portfolios.templatetags.portfolio_tags import fraction_pct
from strategies.models import Backtest, Strategy

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "Golden cross on BTC"
MINUS = "\u2212"
FIELD_ERROR = re.compile(r'<p class="field-error"[^>]*data-field-error="([a-z_.]+)">([^<]*)</p>')
FAST_FIELD = re.compile(
    r'<div class="field has-error">\s*<label for="id_params\.fast">.*?</div>', re.DOTALL
)  # the fast input's own block, its error inside it
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# The chart library draws on canvases inside the container; a blank (0 by 0) one means nothing was drawn.
CHART_CANVASES = """
(chart) => [...chart.querySelectorAll("canvas")].map((canvas) => [canvas.width, canvas.height])
"""
FORM_DATA = "(form) => [...new FormData(form).entries()]"
ARM_SETTLED = """() => {
  window.kindSwapped = new Promise((resolve) => document.body.addEventListener("htmx:afterSettle", resolve, { once: true }));
}"""
SETTLED = "() => window.kindSwapped.then(() => true)"


def signed_pct(value) -> str:
    """A fraction as the results page shows a return: "+12.34%", "−5.60%", "0.00%"."""
    number = Decimal(str(value))
    text = fraction_pct(number).lstrip("-")
    if text == "0.00%":
        return text
    return ("+" if number > 0 else MINUS) + text


def ratio(value) -> str:
    return "—" if value is None else f"{Decimal(str(value)):.2f}".replace("-", MINUS)


def drawdown(value) -> str:
    number = Decimal(str(value))
    return MINUS + fraction_pct(number) if number else fraction_pct(number)


def test_create_strategy_and_backtest_it(
    page: Page, page_guard: PageGuard, live_server, alice, save_screenshot
) -> None:
    base = live_server.url
    assert load_snapshot() is not None

    page.goto("/login/")
    page.locator("input[name=email]").fill(alice.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard/")

    page.goto("/strategies/")
    page.get_by_test_id("new-strategy").click()
    expect(page).to_have_url(f"{base}/strategies/new/")
    expect(page.get_by_role("heading", level=1)).to_have_text("New strategy")
    page.wait_for_function("() => typeof window.htmx === 'object'")

    form = page.get_by_test_id("strategy-form")
    form.get_by_label("Name", exact=True).fill(NAME)
    form.get_by_label("Coin").select_option(label="Bitcoin · BTC")
    form.get_by_label("Timeframe").select_option("1d")
    # Choosing a kind swaps its parameter inputs in: filling them before that swap lands would be undone by it,
    # even when the kind chosen is the one already shown.
    page.evaluate(ARM_SETTLED)
    form.get_by_label("Strategy kind").select_option("sma_crossover")
    page.evaluate(SETTLED)
    expect(page.get_by_test_id("params")).to_have_attribute("data-kind", "sma_crossover")
    fast, slow = form.get_by_label("Fast"), form.get_by_label("Slow")
    fast.fill("40")
    slow.fill("30")

    # The form as filled, sent through this browser's session but not the browser itself: the refusal is a 400,
    # and the page guard allows no error response.
    fields = [tuple(entry) for entry in form.evaluate(FORM_DATA)]
    assert {("params.fast", "40"), ("params.slow", "30"), ("coin", "bitcoin"), ("timeframe", "1d")} <= set(fields)
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    with httpx.Client(base_url=base, cookies=cookies, trust_env=False, timeout=10) as client:
        refused = client.post("/strategies/new/", data=dict(fields), headers={"Referer": f"{base}/strategies/new/"})
    assert refused.status_code == 400, refused.text[:500]
    assert FIELD_ERROR.findall(refused.text) == [("params.fast", "fast must be shorter than slow.")]
    beside = FAST_FIELD.search(refused.text)
    assert beside is not None, refused.text[:2000]
    assert 'data-field-error="params.fast"' in beside.group(0)
    assert not Strategy.objects.exists()

    fast.fill("10")
    form.get_by_role("button", name="Create strategy").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/strategies/\d+/$"))
    expect(page.locator("ul.messages li")).to_have_text(
        [f"Strategy “{NAME}” saved: run a backtest to see how it would have done."]
    )
    strategy = Strategy.objects.get(owner=alice)
    assert (strategy.name, strategy.kind, strategy.coin_id, strategy.timeframe) == (
        NAME,
        "sma_crossover",
        "bitcoin",
        "1d",
    )
    assert strategy.params == {"fast": 10, "slow": 30}
    expect(page.get_by_role("heading", level=1)).to_have_text(NAME)
    expect(page.get_by_test_id("spec").locator('[data-param="fast"] dd.mono')).to_have_text("10")
    expect(page.get_by_test_id("spec").locator('[data-param="slow"] dd.mono')).to_have_text("30")

    # The default range (the last 365 days), capital and costs.
    page.get_by_test_id("backtest-form").get_by_role("button", name="Run backtest").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/backtests/{UUID}/$"))
    backtest_id = page.url.rstrip("/").rsplit("/", 1)[1]
    results = page.get_by_test_id("backtest-results")
    expect(results).to_have_attribute("data-status", "succeeded", timeout=15_000)
    assert Backtest.objects.get(pk=backtest_id).status == Backtest.Status.SUCCEEDED

    with httpx.Client(base_url=base, cookies=cookies, trust_env=False, timeout=10) as client:
        answer = client.get(f"/api/v1/backtests/{backtest_id}/", headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert (body["status"], body["progress"]) == ("succeeded", 100)
    metrics = body["metrics"]
    trades = int(metrics["trades"])
    assert len(body["trades"]) == trades > 0
    assert len(body["equity_curve"]) >= 2

    metric_cards = page.get_by_test_id("metrics")
    expected = {
        "total_return": ("Total return", signed_pct(metrics["total_return"])),
        "sharpe": ("Sharpe ratio", ratio(metrics["sharpe"])),
        "max_drawdown": ("Max drawdown", drawdown(metrics["max_drawdown"])),
        "trades": ("Trades", f"{trades:,}"),
    }
    for key, (label, value) in expected.items():
        card = metric_cards.locator(f'[data-metric="{key}"]')
        expect(card.locator("h3")).to_have_text(label)
        expect(card.locator(".metric-value")).to_have_text(value)
    expect(page.get_by_test_id("total-return")).to_have_text(expected["total_return"][1])

    # Both charts hold every point of the curve, drawn on canvases of a real size.
    for chart in (page.get_by_test_id("equity-chart"), page.get_by_test_id("drawdown-chart")):
        expect(chart).to_have_attribute("data-points", str(len(body["equity_curve"])))
        canvases = chart.evaluate(CHART_CANVASES)
        assert canvases, "no canvas in the chart"
        assert all(width > 0 and height > 0 for width, height in canvases), canvases
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 0
        assert box["height"] > 0

    expect(page.get_by_test_id("trades").locator("tbody tr")).to_have_count(trades)
    save_screenshot(page, "strategies-backtest")
    page_guard.assert_clean()
