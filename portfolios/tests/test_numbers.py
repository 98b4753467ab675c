"""Holdings, summary, performance and risk: exact figures, constant query counts."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios import selectors, services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot

from .conftest import order, set_price

pytestmark = pytest.mark.django_db


def test_holdings_rows(alice_api, alice_portfolio):
    order(alice_api, alice_portfolio, "buy", "10")  # cost 1001 (fee 1)
    set_price("ethereum", "50")
    order(alice_api, alice_portfolio, "buy", "20", coin="ethereum")  # cost 1001
    set_price("bitcoin", "120")
    rows = {row["coin"]: row for row in alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/holdings/").json()}
    btc = rows["bitcoin"]
    assert (btc["quantity"], btc["average_cost"], btc["price"], btc["market_value"]) == ("10", "100.1", "120", "1200")
    assert btc["unrealized_pnl"] == "199"
    assert btc["unrealized_pnl_pct"] == "19.8801"  # 199 / 1001
    total = Decimal("7998") + Decimal("1200") + Decimal("1000")
    assert Decimal(btc["allocation_pct"]) == (Decimal(1200) / total * 100).quantize(Decimal("0.0001"))
    assert rows["ethereum"]["stale"] is False


def _snapshots(portfolio, values: list[str], flows: dict[int, str] | None = None) -> None:
    today = timezone.now().date()
    PortfolioSnapshot.objects.filter(portfolio=portfolio).delete()
    for offset, value in enumerate(values):
        day = today - timedelta(days=len(values) - offset)
        flow = Decimal((flows or {}).get(offset, "0"))
        PortfolioSnapshot.objects.create(
            portfolio=portfolio,
            date=day,
            cash=Decimal(value),
            market_value=0,
            total_value=Decimal(value),
            net_flow=flow,
        )


def _backdate(portfolio, days: int) -> None:
    when = timezone.now() - timedelta(days=days)
    Portfolio.objects.filter(pk=portfolio.pk).update(created_at=when)
    CashTransfer.objects.filter(portfolio=portfolio).update(created_at=when)
    portfolio.refresh_from_db()


def test_time_weighted_return_ignores_deposits(alice_portfolio):
    _backdate(alice_portfolio, 3)
    _snapshots(alice_portfolio, ["10000", "11000", "16500"], flows={2: "5000"})
    CashTransfer.objects.create(
        portfolio=alice_portfolio, kind="deposit", amount=5000, created_at=timezone.now() - timedelta(days=1)
    )
    result = selectors.performance(alice_portfolio, days=None)
    # days: 10000 deposited (0 %), → 11000 (+10 %), 11000 → 16500 of which 5000 deposited (+4.55 %),
    # 16500 → 10000 live today
    expected = (Decimal("1.1") * (Decimal(11500) / Decimal(11000)) * (Decimal(10000) / Decimal(16500)) - 1).quantize(
        Decimal("1e-8")
    )
    assert result.time_weighted_return == expected
    assert result.net_flows == Decimal("15000")  # the starting cash and the deposit
    assert len(result.series) == 4  # no point before the portfolio existed
    assert [value for _, value in result.series][-1] == Decimal("10000")


def test_performance_api_ranges(alice_api, alice_portfolio):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/performance/"
    body = alice_api.get(f"{url}?days=7").json()
    assert set(body) == {"days", "time_weighted_return", "simple_return", "net_flows", "series"}
    assert body["series"][-1]["total_value"] == "10000"
    assert alice_api.get(f"{url}?days=all").status_code == 200
    bad = alice_api.get(f"{url}?days=3")
    assert bad.status_code == 400
    assert "days" in bad.json()["errors"]


def test_risk_figures(alice_api, alice_portfolio):
    _backdate(alice_portfolio, 4)
    order(alice_api, alice_portfolio, "buy", "50")  # half in bitcoin
    _snapshots(alice_portfolio, ["10000", "11000", "9900", "10890"])
    alice_portfolio.refresh_from_db()
    result = selectors.risk(alice_portfolio)
    # returns: 0 % (the starting deposit), +10 %, -10 %, +10 %, then today live
    assert result.observations == 5
    assert result.max_drawdown is not None
    assert result.max_drawdown >= Decimal("0.1")
    assert result.volatility > 0
    assert result.value_at_risk_95 > 0
    assert result.largest_holding_pct == Decimal("50.0000") or result.largest_holding_pct < Decimal("51")
    assert result.herfindahl_index == Decimal("1")  # one coin
    body = alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/risk/").json()
    assert set(body) >= {
        "volatility",
        "max_drawdown",
        "sharpe",
        "value_at_risk_95",
        "largest_holding_pct",
        "herfindahl_index",
    }


def test_drawdown_is_the_largest_fall_from_a_peak(alice_portfolio):
    _snapshots(alice_portfolio, ["100", "120", "90", "110", "60", "200"])
    # live value today is the portfolio's 10000 cash; only look at the stored days
    returns = selectors.daily_returns(
        PortfolioSnapshot.objects.filter(portfolio=alice_portfolio)
        .order_by("date")
        .values_list("date", "total_value", "net_flow")
    )
    index, peak, deepest = Decimal(1), Decimal(1), Decimal(0)
    for r in returns:
        index *= 1 + r
        peak = max(peak, index)
        deepest = max(deepest, (peak - index) / peak)
    assert deepest == Decimal("0.5")  # 120 → 60


@pytest.mark.parametrize("url", ["holdings", "summary"])
def test_holdings_and_summary_queries_do_not_grow_with_trades(
    alice_api, alice_portfolio, django_assert_max_num_queries, url
):
    for i in range(3):
        set_price(f"coin-{i}", "1")
    for i in range(3):
        order(alice_api, alice_portfolio, "buy", "1", coin=f"coin-{i}")
    path = f"/api/v1/portfolios/{alice_portfolio.pk}/{url}/"
    alice_api.get(path)
    with django_assert_max_num_queries(10) as few:
        alice_api.get(path)
    baseline = len(few.captured_queries)  # read now: the next request resets the query log
    for _ in range(15):
        order(alice_api, alice_portfolio, "buy", "1", coin="coin-0")
        order(alice_api, alice_portfolio, "sell", "1", coin="coin-0")
    for i in range(3, 13):
        set_price(f"coin-{i}", "1")
        order(alice_api, alice_portfolio, "buy", "1", coin=f"coin-{i}")
    with django_assert_max_num_queries(baseline):
        assert alice_api.get(path).status_code == 200


def test_snapshots_are_taken_after_trades_and_daily(alice, alice_portfolio, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.place_order(
            user=alice,
            portfolio_id=alice_portfolio.pk,
            coin_id="bitcoin",
            side="buy",
            type="market",
            quantity=Decimal("1"),
        )
    snapshot = PortfolioSnapshot.objects.get(portfolio=alice_portfolio, date=timezone.now().date())
    assert snapshot.total_value == Decimal("9999.9")  # 9899.9 cash + 100
    assert snapshot.net_flow == Decimal("10000")  # the starting deposit, today
    assert services.snapshot_all_portfolios() == 1


def test_a_same_day_deposit_is_not_a_gain_before_any_snapshot(alice, alice_portfolio):
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="deposit", amount=Decimal(5000))
    assert not PortfolioSnapshot.objects.exists()
    alice_portfolio.refresh_from_db()
    result = selectors.performance(alice_portfolio, days=None)
    assert (result.time_weighted_return, result.simple_return) == (0, 0)
    assert result.net_flows == Decimal(15000)  # the starting cash is money put in too


def test_a_deposit_after_yesterdays_snapshot_is_not_a_gain(alice, alice_portfolio):
    _backdate(alice_portfolio, 1)
    _snapshots(alice_portfolio, ["10000"], flows={0: "10000"})
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="deposit", amount=Decimal(5000))
    alice_portfolio.refresh_from_db()
    for days in (None, 7):
        result = selectors.performance(alice_portfolio, days=days)
        assert (result.time_weighted_return, result.simple_return) == (0, 0)
    summary = selectors.portfolio_valuation(alice_portfolio)
    assert summary.day_change == 0


def test_simple_return_is_the_gain_over_the_capital_put_in(alice, alice_api, alice_portfolio):
    _backdate(alice_portfolio, 2)
    _snapshots(alice_portfolio, ["10000", "10000"], flows={0: "10000"})
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="deposit", amount=Decimal(1000))
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="withdrawal", amount=Decimal(500))
    order(alice_api, alice_portfolio, "buy", "10")  # 1000 + 1 fee at 100
    set_price("bitcoin", "150")  # + 500 on the position
    alice_portfolio.refresh_from_db()
    result = selectors.performance(alice_portfolio, days=None)
    # value 10000 + 1000 - 500 - 1 + 500 = 10999; put in: 10000 + 1000 (gross deposits); net transfers 10500
    assert result.simple_return == ((Decimal(10999) - Decimal(10500)) / Decimal(11000)).quantize(Decimal("1e-8"))
    assert result.net_flows == Decimal(10500)
