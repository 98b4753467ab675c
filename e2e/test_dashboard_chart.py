"""The dashboard's value chart in a browser: every portfolio rebuilt from its trades and stored prices and summed,
on the buckets of a portfolio's chart, from the first day on — not one point until snapshots accumulate."""

import itertools
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conftest import PASSWORD
from market.demo.snapshot import load_snapshot
from portfolios import selectors
from portfolios import services as portfolio_services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot, Trade

from .conftest import PageGuard, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RANGES = {"7": 3600, "30": 3600, "90": 86400, "365": 86400, "all": 86400}
FETCH_JSON = "async (url) => (await fetch(url, { headers: { Accept: 'application/json' } })).json()"
FED = "(element) => window.CryptoDeskCharts.chartFor(element).series[0].data().map((p) => [p.time, p.value])"


@pytest.fixture
def desks(alice):
    """Two portfolios on the demo market, opened 40 and 12 days ago, trading on different days; no snapshot."""
    load_snapshot()
    now = timezone.now()
    portfolios = []
    for name, cash, opened_days_ago, trades in [
        ("Long book", 20_000, 40, [("bitcoin", "buy", "0.2", 35), ("bitcoin", "sell", "0.05", 2)]),
        ("Short book", 5_000, 12, [("ethereum", "buy", "1.5", 9)]),
    ]:
        portfolio = portfolio_services.create_portfolio(owner=alice, name=name, starting_cash=Decimal(cash))
        opened = now - timedelta(days=opened_days_ago)
        Portfolio.objects.filter(pk=portfolio.pk).update(created_at=opened)
        CashTransfer.objects.filter(portfolio=portfolio).update(created_at=opened)
        for coin, side, quantity, days_ago in trades:
            order, _ = portfolio_services.place_order(
                user=alice,
                portfolio_id=portfolio.pk,
                coin_id=coin,
                side=side,
                type="market",
                quantity=Decimal(quantity),
            )
            Trade.objects.filter(order=order).update(executed_at=now - timedelta(days=days_ago))
        portfolios.append(portfolio)
    PortfolioSnapshot.objects.filter(portfolio__owner=alice).delete()
    return [Portfolio.objects.get(pk=portfolio.pk) for portfolio in portfolios]


def test_the_dashboard_chart_has_every_bucket_of_every_range_summed_over_the_portfolios(
    page: Page, page_guard: PageGuard, alice, desks
):
    log_in(page, alice.email, PASSWORD)  # lands on the dashboard
    chart = page.get_by_test_id("value-chart")
    expect(chart).to_have_attribute("data-interval", "3600")  # the default range: 30 days, hourly
    live = sum(selectors.portfolio_valuation(portfolio).total_value for portfolio in desks)
    for days, step in RANGES.items():
        page.locator(f'[data-chart-range="value-chart"] button[data-days="{days}"]').click()
        body = page.evaluate(FETCH_JSON, f"/dashboard/series/?days={days}")
        expect(chart).to_have_attribute("data-interval", str(step))
        expect(chart).to_have_attribute("data-points", str(len(body["points"])))
        fed = chart.evaluate(FED)
        times = [time for time, _ in fed]
        assert len(times) == len(body["points"]) >= 8, days
        assert {later - earlier for earlier, later in itertools.pairwise(times)} == {step}, days
        assert times[-1] == int(datetime.fromisoformat(body["points"][-1]["time"]).timestamp()), days
        # the chart draws doubles: the same double JavaScript's Number() reads from each exact decimal string
        assert [value for _, value in fed] == [float(p["total_value"]) for p in body["points"]], days
        assert Decimal(body["points"][-1]["total_value"]) == live, days
    assert len(times) == (timezone.now().date() - desks[0].created_at.date()).days + 1  # "all": from the first day
    expect(page.locator('[data-chart-status="value-chart"]')).to_have_text("")
    page_guard.assert_clean()
