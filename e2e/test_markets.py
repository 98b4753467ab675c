"""The demo market in a browser: the markets table (search, sort, sparklines, logos), a coin's chart, the movers."""

import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from conftest import PASSWORD
from market import selectors
from market.demo.snapshot import load_snapshot
from market.models import Coin
from market.templatetags.market_tags import price as price_text
from market.views import PAGE_SIZE

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MARKET_ASSETS = {
    "/static/css/app.css",
    "/static/js/app.js",
    "/static/vendor/htmx-2.0.4.min.js",
    "/static/img/logo.svg",
}
CHART_ASSETS = {"/static/vendor/lightweight-charts-4.2.3.min.js", "/static/js/coin_chart.js"}
ETH_MATCHES = 6  # Ethereum, Tether, Ethereum Classic, Ethena, ether.fi, Lido Staked Ether: name or symbol
PRICE = re.compile(r"^\$[\d,]+\.\d{2,12}$")

# Every logo in scope is served by this app (/coins/<id>/logo/), finished loading and has a natural size.
ALL_LOGOS_LOADED = r"""
(scope) => {
  const logos = [...scope.querySelectorAll("img")];
  return logos.length > 0 && logos.every((img) =>
    /^\/coins\/[^/]+\/logo\/$/.test(img.getAttribute("src")) && img.complete && img.naturalWidth > 0);
}
"""
# The chart library draws on canvases inside the container; a blank (0 by 0) one means nothing was drawn.
CHART_CANVASES = """
(chart) => [...chart.querySelectorAll("canvas")].map((canvas) => [canvas.width, canvas.height])
"""


def names(table: Locator) -> list[str]:
    return table.locator("tbody tr .coin-name").all_inner_texts()


def prices(table: Locator) -> list[Decimal]:
    """The Price column as numbers ("$86,012.34", "$0.00001234")."""
    return [
        Decimal(text.strip().lstrip("$").replace(",", ""))
        for text in table.locator("tbody tr td:nth-child(3)").all_inner_texts()
    ]


def drawn_across(points: str, width: float = 120, height: float = 32) -> bool:
    """An SVG polyline spanning the sparkline's box left to right, every vertex inside it."""
    pairs = [tuple(float(n) for n in pair.split(",")) for pair in points.split()]
    return (
        len(pairs) >= 2
        and pairs[0][0] == 0
        and pairs[-1][0] == width
        and all(0 <= x <= width and 0 <= y <= height for x, y in pairs)
    )


def expect_logos_loaded(page: Page, scope: Locator) -> None:
    page.wait_for_function(ALL_LOGOS_LOADED, arg=scope.element_handle())


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def click_and_expect_points(page: Page, button: Locator, kind: str, days: str) -> int:
    """Click a chart control; the chart must then hold exactly as many points as its data answered."""
    with page.expect_response(
        lambda r: urlsplit(r.url).path.endswith("/chart/") and f"days={days}&kind={kind}" in r.url
    ) as answer:
        button.click()
    assert answer.value.status == 200, answer.value.url
    body = answer.value.json()
    count = body["stored"]
    assert count > 0, f"{answer.value.url} answered no points"
    expect(button).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("price-chart")).to_have_attribute("data-points", str(count))
    return count


def test_markets_table_coin_chart_and_dashboard_movers(
    page: Page, page_guard: PageGuard, live_server, alice, save_screenshot
) -> None:
    base = live_server.url
    loaded = load_snapshot()
    assert loaded is not None
    assert loaded["coins"] == Coin.objects.count() > PAGE_SIZE

    # Anonymous: the markets page is public.
    page.goto("/markets/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Markets")
    expect(page.get_by_test_id("freshness")).to_have_text(re.compile(r"^\s*Prices updated \d+ s ago\s*$"))
    expect(page.get_by_test_id("freshness")).not_to_have_class(re.compile(r"is-stale"))
    page.wait_for_function("() => typeof window.htmx === 'object'")
    table = page.get_by_test_id("coin-table")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first.locator(".coin-name")).to_have_text("Bitcoin")
    expect(rows.first.locator(".coin-symbol")).to_have_text("BTC")
    expect(page.get_by_role("navigation", name="Pages")).to_contain_text(
        f"Page 1 of {-(-loaded['coins'] // PAGE_SIZE)} · {loaded['coins']} coins"
    )
    by_rank = names(table)
    assert by_rank[:2] == ["Bitcoin", "Ethereum"]

    # Sparklines are drawn by the server: one non-empty polyline per row.
    sparklines = rows.locator("svg.sparkline polyline")
    expect(sparklines).to_have_count(PAGE_SIZE)
    points = sparklines.evaluate_all("(lines) => lines.map((line) => line.getAttribute('points') || '')")
    bad = [p[:60] for p in points if not drawn_across(p)]
    assert not bad, bad

    # Logos come from this app; lazy ones load once scrolled near (every tenth row is close enough).
    for index in [*range(0, PAGE_SIZE, 10), PAGE_SIZE - 1]:
        rows.nth(index).scroll_into_view_if_needed()
    expect_logos_loaded(page, table)
    assert page_guard.static_loaded >= MARKET_ASSETS
    page.evaluate("() => window.scrollTo(0, 0)")
    save_screenshot(page, "markets")

    # Search (htmx, debounced): fewer rows, Ethereum first, the URL follows.
    page.locator("#coin-search").fill("eth")
    expect(rows).to_have_count(ETH_MATCHES)
    expect(rows.first.locator(".coin-name")).to_have_text("Ethereum")
    expect(page).to_have_url(f"{base}/markets/?search=eth")
    by_rank = names(table)
    assert "Bitcoin" not in by_rank

    # Sort by price (htmx): most expensive first, the search kept, the header marked.
    price_header = table.locator("thead a[data-sort=current_price]")
    expect(price_header).to_have_text("Price")
    price_header.click()
    expect(page).to_have_url(re.compile(r"[?&]ordering=-current_price(&|$)"))
    assert query_of(page) == {"search": ["eth"], "ordering": ["-current_price"]}
    expect(table.locator("thead a[data-sort=current_price]")).to_have_text("Price ↓")
    expect(table.locator("thead th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    expect(rows).to_have_count(ETH_MATCHES)
    by_price = names(table)
    assert sorted(by_price) == sorted(by_rank)
    assert by_price != by_rank
    shown = prices(table)
    assert shown == sorted(shown, reverse=True), shown

    # A second click reverses it.
    table.locator("thead a[data-sort=current_price]").click()
    expect(page).to_have_url(re.compile(r"[?&]ordering=current_price(&|$)"))
    expect(table.locator("thead a[data-sort=current_price]")).to_have_text("Price ↑")
    expect(rows).to_have_count(ETH_MATCHES)
    assert sorted(names(table)) == sorted(by_rank)
    assert prices(table) == sorted(shown)  # equal prices (ETH and stETH) keep their id order both ways

    # From the full table to the Bitcoin page.
    page.goto("/markets/")
    with page.expect_response(lambda r: "/markets/bitcoin/chart/?days=30&kind=line" in r.url) as first_draw:
        rows.first.get_by_role("link", name=re.compile("Bitcoin")).click()
    expect(page).to_have_url(f"{base}/markets/bitcoin/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bitcoin")
    bitcoin = Coin.objects.select_related("quote").get(pk="bitcoin")
    expect(page.get_by_test_id("price")).to_have_text(price_text(bitcoin.quote.current_price))
    expect(page.get_by_test_id("price")).to_have_text(PRICE)
    freshness = page.get_by_test_id("freshness")
    expect(freshness).to_contain_text(re.compile(r"Updated \d+\xa0minutes? ago"))
    expect(freshness).to_contain_text("demo data")
    expect(freshness).not_to_have_class(re.compile(r"is-stale"))
    expect_logos_loaded(page, page.locator(".coin-title"))

    # The chart: 30 days of line by default, drawn on a real canvas.
    chart = page.get_by_test_id("price-chart")
    line_30d = first_draw.value.json()["stored"]
    assert line_30d > 0
    expect(chart).to_have_attribute("data-points", str(line_30d))
    expect(page.locator("[data-range='30']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-chart-status]")).to_have_text("")
    canvases = chart.evaluate(CHART_CANVASES)
    assert canvases, "no canvas in the chart"
    assert any(width > 0 and height > 0 for width, height in canvases), canvases
    assert page_guard.static_loaded >= MARKET_ASSETS | CHART_ASSETS

    # 7D: hourly points for a week (fewer than 30 days' worth); candles: 4 h buckets over that week.
    line_7d = click_and_expect_points(page, page.locator("[data-range='7']"), "line", "7")
    assert 24 * 6 < line_7d < line_30d
    candles_7d = click_and_expect_points(page, page.locator("[data-kind='candles']"), "candles", "7")
    assert 30 < candles_7d <= 7 * 6 + 1
    expect(page.locator("[data-kind='line']")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("[data-chart-status]")).to_have_text("")
    save_screenshot(page, "coin-candles")

    # Logged in: the dashboard lists the five best 24h movers.
    page.goto("/login/")
    page.locator("input[name=email]").fill(alice.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard/")
    gainers = page.get_by_test_id("gainers")
    expect(gainers.get_by_role("heading", level=2)).to_have_text("Top gainers (24h)")
    expect(gainers.locator("li")).to_have_count(5)
    expected = [coin.name for coin in selectors.top_coins("gainers", limit=5)]
    expect(gainers.locator(".coin-name")).to_have_text(expected)
    expect(page.get_by_test_id("losers").locator("li")).to_have_count(5)
    expect(page.get_by_test_id("trending").locator("li")).to_have_count(7)
    expect_logos_loaded(page, page.locator("main"))

    page_guard.assert_clean()
