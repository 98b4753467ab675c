"""Transfers are read from CashTransfer rows by every figure: a deposit is never a gain, snapshot or not."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios import selectors, services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot

from .test_pages import log_in

pytestmark = pytest.mark.django_db


def _opened_days_ago(portfolio: Portfolio, days: int, *, closes: dict[int, str]) -> None:
    """The portfolio (and its starting deposit) `days` ago, with a close `days_ago: value` for each entry."""
    when = timezone.now() - timedelta(days=days)
    Portfolio.objects.filter(pk=portfolio.pk).update(created_at=when)
    CashTransfer.objects.filter(portfolio=portfolio).update(created_at=when)
    PortfolioSnapshot.objects.filter(portfolio=portfolio).delete()
    today = timezone.now().date()
    for days_ago, value in closes.items():
        PortfolioSnapshot.objects.create(
            portfolio=portfolio,
            date=today - timedelta(days=days_ago),
            cash=Decimal(value),
            market_value=0,
            total_value=Decimal(value),
        )
    portfolio.refresh_from_db()


def _deposit(user, portfolio: Portfolio, amount: str, *, days_ago: int = 0) -> None:
    services.transfer_cash(user=user, portfolio_id=portfolio.pk, kind="deposit", amount=Decimal(amount))
    if days_ago:
        latest = CashTransfer.objects.filter(portfolio=portfolio).latest("pk")
        CashTransfer.objects.filter(pk=latest.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    portfolio.refresh_from_db()


def _day_change(html: str) -> str | None:
    found = re.search(r'data-testid="day-change" data-value="([^"]+)"', html)
    return found.group(1) if found else None


def test_a_same_day_deposit_is_no_change_on_the_list_and_the_dashboard(client, alice, alice_portfolio):
    _opened_days_ago(alice_portfolio, 1, closes={1: "10000"})
    _deposit(alice, alice_portfolio, "5000")  # no snapshot task runs: today's snapshot does not exist
    assert not PortfolioSnapshot.objects.filter(date=timezone.now().date()).exists()
    (valuation,) = selectors.valuations_for(alice)
    assert valuation.total_value == Decimal(15000)
    assert valuation.day_change == 0
    log_in(client, alice)
    listing = client.get("/portfolios/")
    assert [v.day_change for v in listing.context["valuations"]] == [0]
    assert listing.context["totals"].day_change == 0
    assert _day_change(client.get("/dashboard/").content.decode()) == "0"
    assert selectors.portfolio_valuation(alice_portfolio).day_change == 0


def test_a_same_day_deposit_is_no_gain_on_the_dashboard_chart(client, alice, alice_portfolio):
    _opened_days_ago(alice_portfolio, 1, closes={1: "10000"})
    _deposit(alice, alice_portfolio, "5000")
    log_in(client, alice)
    for days in ("7", "all"):
        body = client.get(f"/dashboard/series/?days={days}").json()
        assert body["time_weighted_return"] == "0", days
        assert body["points"][-1]["total_value"] == "15000"


def test_a_deposit_on_a_day_without_a_close_is_booked_at_the_next_point(client, alice, alice_portfolio):
    _opened_days_ago(alice_portfolio, 4, closes={4: "10000", 3: "11000"})  # +10 % on day 3, then no closes
    _deposit(alice, alice_portfolio, "5000", days_ago=2)
    # the same deposit would be counted as a gain by a reader that looks at today's transfers only
    (valuation,) = selectors.valuations_for(alice)
    assert valuation.day_change == Decimal(15000) - Decimal(11000) - Decimal(5000)
    assert selectors.portfolio_valuation(alice_portfolio).day_change == valuation.day_change
    expected = (Decimal("1.1") * (Decimal(10000) / Decimal(11000)) - 1).quantize(Decimal("1e-8"))
    assert selectors.performance(alice_portfolio, days=7).time_weighted_return == expected
    log_in(client, alice)
    body = client.get("/dashboard/series/?days=7").json()
    assert Decimal(body["time_weighted_return"]) == expected


def test_a_second_portfolio_opened_today_is_money_put_in_on_the_dashboard(client, alice, alice_portfolio):
    _opened_days_ago(alice_portfolio, 1, closes={1: "10000"})
    services.create_portfolio(owner=alice, name="Fresh", starting_cash=Decimal(2500))
    PortfolioSnapshot.objects.filter(date=timezone.now().date()).delete()
    log_in(client, alice)
    body = client.get("/dashboard/series/?days=7").json()
    assert body["points"][-1]["total_value"] == "12500"
    assert body["time_weighted_return"] == "0"


def test_withdrawals_are_not_losses_anywhere(client, alice, alice_portfolio):
    _opened_days_ago(alice_portfolio, 1, closes={1: "10000"})
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="withdrawal", amount=Decimal(4000))
    alice_portfolio.refresh_from_db()
    (valuation,) = selectors.valuations_for(alice)
    assert valuation.day_change == 0
    assert selectors.performance(alice_portfolio, days=7).time_weighted_return == 0
    assert selectors.risk(alice_portfolio).max_drawdown == 0
    log_in(client, alice)
    assert client.get("/dashboard/series/?days=7").json()["time_weighted_return"] == "0"


def _desk(user, count: int, *, first: int = 0) -> None:
    for n in range(first, first + count):
        portfolio = services.create_portfolio(owner=user, name=f"Book {n}", starting_cash=Decimal(1000))
        _opened_days_ago(portfolio, 1 + n % 3, closes={1 + n % 3: "1000"})
        _deposit(user, portfolio, "10")


@pytest.mark.parametrize(
    ("url", "transfer_reads"),
    [("/dashboard/", 1), ("/portfolios/", 1), ("/dashboard/series/?days=30", 2)],  # the chart: values and series
)
def test_queries_stay_constant_from_1_to_20_portfolios(
    client, alice, btc, url, transfer_reads, django_assert_max_num_queries
):
    log_in(client, alice)
    _desk(alice, 1)
    client.get(url)  # warm: the device-session touch and the shared market panels
    with django_assert_max_num_queries(10) as one:
        assert client.get(url).status_code == 200
    baseline = len(one.captured_queries)
    _desk(alice, 19, first=1)
    with django_assert_max_num_queries(baseline) as twenty:
        response = client.get(url)
    assert len(twenty.captured_queries) == baseline
    transfers = [q["sql"] for q in twenty.captured_queries if "portfolios_cashtransfer" in q["sql"]]
    assert len(transfers) == transfer_reads  # batched reads for every portfolio at once
    if url == "/portfolios/":
        assert [v.day_change for v in response.context["valuations"]] == [0] * 20
