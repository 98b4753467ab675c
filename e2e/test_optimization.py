"""Optimising a strategy in a browser: the grid form counts its combinations as they are typed, a small grid runs
(eagerly, in the request), and its page shows the sortable table of every row and the heatmap of two parameters,
drawn as SVG beside its table."""

import re
from datetime import UTC, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conftest import PASSWORD
from strategies import optimizations, services
from strategies.models import Optimization

from .conftest import PageGuard, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
DAYS = 400


@pytest.fixture
def strategy(alice):
    from market.models import Coin, PricePoint, Quote

    coin = Coin.objects.create(id="walkcoin", symbol="walk", name="Walkcoin", market_cap_rank=1)
    day = timedelta(days=1)
    first = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAYS * day
    prices = 100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0.0004, 0.035, DAYS)))
    PricePoint.objects.bulk_create(
        PricePoint(coin=coin, ts=first + i * day, price=Decimal(f"{price:.8f}")) for i, price in enumerate(prices)
    )
    Quote.objects.create(coin=coin, current_price=Decimal(f"{prices[-1]:.8f}"), last_updated=timezone.now())
    return services.create_strategy(
        owner=alice, name="Walk cross", kind="sma_crossover", params={"fast": 10, "slow": 30}, coin=coin
    )


def test_optimise_a_small_grid(page: Page, page_guard: PageGuard, live_server, alice, strategy, save_screenshot):
    base = live_server.url
    log_in(page, alice.email, PASSWORD)
    page.goto(f"/strategies/{strategy.pk}/")
    page.get_by_test_id("optimise").click()
    expect(page).to_have_url(f"{base}/strategies/{strategy.pk}/optimize/")

    form = page.get_by_test_id("optimization-form")
    count = page.get_by_test_id("combination-count").locator("[data-combinations]")
    expect(count).to_have_text("1")
    form.get_by_label("Fast: values").fill("5, 10, 20")
    expect(count).to_have_text("3")
    form.get_by_label("Slow: from").fill("15")
    form.get_by_label("Slow: to").fill("45")
    form.get_by_label("Slow: step").fill("10")
    expect(count).to_have_text("12")  # 3 fast × 4 slow (15, 25, 35, 45)
    expect(form.locator("[data-walk-forward-fields]")).to_be_hidden()
    form.get_by_label("Rank by").select_option("total_return")
    save_screenshot(page, "optimization-form")
    form.get_by_role("button", name="Run optimisation").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/optimizations/{UUID}/$"))
    results = page.get_by_test_id("optimization-results")
    expect(results).to_have_attribute("data-status", "succeeded", timeout=20_000)
    optimization = Optimization.objects.get()
    rows = optimizations.result_rows(optimization)
    assert (optimization.combinations, optimization.skipped, len(rows)) == (12, 1, 11)  # fast 20, slow 15

    table = page.get_by_test_id("results-table")
    expect(table.locator("tbody tr")).to_have_count(11)
    expect(table.locator("tbody tr[data-best]")).to_have_count(1)
    best_return = optimization.best["metrics"]["total_return"]
    assert best_return == max(row["metrics"]["total_return"] for row in rows)

    # sorted by return, highest first, the best row leads
    header = table.locator("thead th[data-metric='total_return']")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(table.locator("tbody tr").first).to_have_attribute("data-best", "1")

    # the heatmap: one cell per fast × slow, the skipped one empty, labelled for screen readers
    svg = page.get_by_test_id("heatmap-svg")
    expect(svg).to_have_attribute("role", "img")
    expect(svg.locator("rect.heat-cell")).to_have_count(12)
    expect(svg.locator("rect.heat-empty")).to_have_count(1)
    expect(svg.locator("title").first).to_contain_text("Return by fast (rows) and slow (columns)")
    fallback = page.get_by_test_id("heatmap").locator("table[data-heatmap]")
    expect(fallback.locator("tbody tr")).to_have_count(3)
    box = svg.bounding_box()
    assert box is not None
    assert box["width"] > 200
    assert box["height"] > 50

    expect(page.get_by_test_id("deflated-sharpe")).to_contain_text("Deflated Sharpe ratio")
    expect(page.get_by_test_id("glossary").locator("#glossary-dsr dt")).to_have_text("Deflated Sharpe ratio")
    save_screenshot(page, "optimization-results")
    page_guard.assert_clean()
