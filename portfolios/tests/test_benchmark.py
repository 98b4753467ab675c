"""A portfolio against a benchmark coin: aligned daily returns, the benchmark's value series and time-weighted
return, alpha, beta, tracking error and information ratio (cross-checked with empyrical), the API and the page."""

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext

import empyrical
import numpy as np
import pytest
from django.utils import timezone

from cryptodesk.money import CONTEXT, quantize
from market.models import PricePoint
from portfolios import selectors
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot

from .conftest import order, set_price
from .test_pages import log_in

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
# the portfolio's closes from the day it opened (5 days ago) to yesterday; today is live: its 10,000 of cash
CLOSES = ["10000", "10500", "10200", "10800", "10600"]
# bitcoin's close the day before the opening, each day after, then today's quote
BITCOIN = ["100", "110", "99", "105", "120", "114"]
BITCOIN_NOW = "120"


def _midnight(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _prices(coin: str, closes: dict) -> None:
    PricePoint.objects.bulk_create(
        PricePoint(coin_id=coin, ts=_midnight(day) + timedelta(hours=23), price=Decimal(price))
        for day, price in closes.items()
    )


@pytest.fixture
def today():
    return timezone.now().date()


@pytest.fixture
def desk(alice_portfolio, today):
    """Opened 5 days ago with 10,000; snapshots hold each close; 1,000 deposited 2 days ago; bitcoin's daily prices
    from the day before the opening."""
    opened = _midnight(today - 5 * DAY) + timedelta(hours=9)
    Portfolio.objects.filter(pk=alice_portfolio.pk).update(created_at=opened)
    CashTransfer.objects.filter(portfolio=alice_portfolio).update(created_at=opened)
    CashTransfer.objects.create(
        portfolio=alice_portfolio, kind="deposit", amount=Decimal(1000), created_at=_midnight(today - 2 * DAY)
    )
    for offset, value in enumerate(CLOSES):
        PortfolioSnapshot.objects.create(
            portfolio=alice_portfolio,
            date=today - (5 - offset) * DAY,
            cash=Decimal(value),
            market_value=0,
            total_value=Decimal(value),
        )
    _prices("bitcoin", {today - (6 - offset) * DAY: price for offset, price in enumerate(BITCOIN)})
    set_price("bitcoin", BITCOIN_NOW)
    alice_portfolio.refresh_from_db()
    return alice_portfolio


def _returns() -> tuple[list[Decimal], list[Decimal]]:
    """The desk's daily returns (the deposit 2 days ago is not a gain) and bitcoin's on the same days."""
    values = [Decimal(0), *map(Decimal, CLOSES), Decimal(10000)]
    flows = [Decimal(0), Decimal(10000), 0, 0, Decimal(1000), 0, 0]
    portfolio = [Decimal(0)] + [(values[i] - flows[i]) / values[i - 1] - 1 for i in range(2, len(values))]
    prices = [*map(Decimal, BITCOIN), Decimal(BITCOIN_NOW)]
    return portfolio, [prices[i] / prices[i - 1] - 1 for i in range(1, len(prices))]


def _empyrical(returns, benchmark) -> dict[str, float]:
    r, b = np.array(returns, dtype=float), np.array(benchmark, dtype=float)
    alpha, beta = empyrical.alpha_beta(r, b, risk_free=0.0, annualization=365)
    return {
        "alpha": alpha,
        "beta": beta,
        "tracking_error": empyrical.annual_volatility(r - b, annualization=365),
        "information_ratio": empyrical.excess_sharpe(r, b) * np.sqrt(365),
    }


# --- the maths, against empyrical ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_relative_figures_match_empyrical(seed):
    rng = random.Random(seed)
    days = rng.choice([2, 3, 30, 365])
    benchmark = [Decimal(str(round(rng.gauss(0.001, 0.04), 12))) for _ in range(days)]
    returns = [Decimal(str(round(float(b) * rng.uniform(-1, 2) + rng.gauss(0, 0.02), 12))) for b in benchmark]
    ours = selectors.relative_figures(returns, benchmark)
    theirs = _empyrical([float(r) for r in returns], [float(b) for b in benchmark])
    for name, value in theirs.items():
        assert isinstance(ours[name], Decimal), name
        assert abs(float(ours[name]) - value) <= 1e-9 * max(1.0, abs(value)), (name, ours[name], value)


def test_relative_figures_of_the_fixture_match_empyrical():
    returns, benchmark = _returns()
    ours = selectors.relative_figures(returns, benchmark)
    for name, value in _empyrical([float(r) for r in returns], [float(b) for b in benchmark]).items():
        assert abs(float(ours[name]) - value) <= 1e-9, (name, ours[name], value)


def test_relative_figures_are_none_where_undefined():
    assert selectors.relative_figures([Decimal("0.01")], [Decimal("0.02")]) == dict.fromkeys(
        ["alpha", "beta", "tracking_error", "information_ratio"]
    )
    flat = selectors.relative_figures([Decimal("0.01"), Decimal("0.03")], [Decimal(0), Decimal(0)])
    assert (flat["alpha"], flat["beta"]) == (None, None)  # no variance in the benchmark: no regression
    with localcontext(CONTEXT):
        assert abs(flat["tracking_error"] - Decimal("0.0002").sqrt() * Decimal(365).sqrt()) < Decimal("1e-70")
        expected = Decimal("0.02") / Decimal("0.0002").sqrt() * Decimal(365).sqrt()
        assert abs(flat["information_ratio"] - expected) < Decimal("1e-70")
    same = selectors.relative_figures([Decimal("0.01"), Decimal("0.03")], [Decimal("0.01"), Decimal("0.03")])
    assert same["beta"] == 1
    assert same["alpha"] == 0
    assert same["tracking_error"] == 0
    assert same["information_ratio"] is None  # 0 tracking error: nothing to divide by


# --- the selector ----------------------------------------------------------------------------------


def test_benchmark_series_is_the_portfolios_money_held_in_the_coin(desk, today):
    result = selectors.performance(desk, days=None, benchmark="bitcoin").benchmark
    # 10,000 put in on the opening day (bitcoin +10 %), then -10 %, +6.06 %, +14.29 % and 1,000 deposited, -5 %, +5.26 %
    assert result.series == [
        (today - 5 * DAY, Decimal("11000")),
        (today - 4 * DAY, Decimal("9900")),
        (today - 3 * DAY, Decimal("10500")),
        (today - 2 * DAY, Decimal("13000")),
        (today - DAY, Decimal("12350")),
        (today, Decimal("13000")),
    ]
    assert result.time_weighted_return == Decimal("0.20000000")  # 120 / 100 - 1: deposits are not returns
    assert result.observations == 6
    assert result.missing == {}
    flows = [Decimal(10000), 0, 0, Decimal(1000), 0, 0]
    series = [(today - 6 * DAY, Decimal(0), Decimal(0))] + [
        (day, value, flow) for (day, value), flow in zip(result.series, flows, strict=True)
    ]
    assert selectors.series_time_weighted_return(series) == result.time_weighted_return  # the same TWR as a portfolio


def test_figures_are_the_regression_of_the_aligned_daily_returns(desk):
    performance = selectors.performance(desk, days=None, benchmark="bitcoin")
    result = performance.benchmark
    returns, benchmark = _returns()
    expected = selectors.relative_figures(returns, benchmark)
    assert (result.alpha, result.beta, result.tracking_error, result.information_ratio) == tuple(
        quantize(expected[name], places=8) for name in ("alpha", "beta", "tracking_error", "information_ratio")
    )
    assert result.beta is not None
    assert performance.benchmark.coin.pk == "bitcoin"


def test_a_range_that_starts_before_the_coins_history_has_no_figures(desk, today):
    set_price("ethereum", "50")
    _prices("ethereum", {today - 2 * DAY: "40", today - DAY: "45"})
    result = selectors.performance(desk, days=7, benchmark="ethereum").benchmark
    assert result.series == []
    assert (result.time_weighted_return, result.alpha, result.beta) == (None, None, None)
    assert (result.tracking_error, result.information_ratio) == (None, None)
    when = today - 2 * DAY
    for name in ("benchmark.twr", "alpha", "beta", "tracking_error", "information_ratio"):
        assert f"{when:%b} {when.day}, {when.year}" in result.missing[name], name


def test_a_coin_without_any_stored_price_has_no_figures(desk):
    set_price("dogecoin", "0.1")
    result = selectors.performance(desk, days=7, benchmark="dogecoin").benchmark
    assert result.time_weighted_return is None
    assert "No stored Dogecoin price" in result.missing["benchmark.twr"]


def test_one_daily_return_gives_a_twr_but_no_regression(alice_portfolio, today):
    _prices("bitcoin", {today - DAY: "100"})
    set_price("bitcoin", "105")
    result = selectors.performance(alice_portfolio, days=7, benchmark="bitcoin").benchmark
    assert result.observations == 1
    assert result.time_weighted_return == Decimal("0.05000000")
    assert result.series == [(today, Decimal("10500"))]
    assert result.beta is None
    assert "at least 2 daily returns" in result.missing["beta"]
    assert "benchmark.twr" not in result.missing


# --- the API ---------------------------------------------------------------------------------------


def _url(portfolio, query: str = "") -> str:
    return f"/api/v1/portfolios/{portfolio.pk}/performance/{query}"


def test_api_adds_the_benchmark_when_asked(alice_api, desk, today):
    body = alice_api.get(_url(desk, "?days=all&benchmark=bitcoin")).json()
    result = selectors.performance(desk, days=None, benchmark="bitcoin").benchmark
    assert body["benchmark"] == {
        "coin": "bitcoin",
        "observations": 6,
        "twr": "0.2",
        "series": [
            {"date": str(today - 5 * DAY), "total_value": "11000"},
            {"date": str(today - 4 * DAY), "total_value": "9900"},
            {"date": str(today - 3 * DAY), "total_value": "10500"},
            {"date": str(today - 2 * DAY), "total_value": "13000"},
            {"date": str(today - DAY), "total_value": "12350"},
            {"date": str(today), "total_value": "13000"},
        ],
    }
    for name in ("alpha", "beta", "tracking_error", "information_ratio"):
        assert isinstance(body[name], str), name  # exact decimals, as every other figure
        assert Decimal(body[name]) == getattr(result, name), name
    assert body["missing"] == {}
    assert len(body["series"]) == len(body["benchmark"]["series"])


def test_api_leaves_the_benchmark_out_unless_asked(alice_api, desk):
    body = alice_api.get(_url(desk, "?days=all")).json()
    assert set(body) == {"days", "time_weighted_return", "simple_return", "net_flows", "series"}


def test_an_empty_benchmark_is_bitcoin(alice_api, desk):
    body = alice_api.get(_url(desk, "?days=all&benchmark=")).json()
    assert body["benchmark"]["coin"] == "bitcoin"
    assert body["benchmark"]["twr"] == "0.2"


def test_an_unknown_benchmark_is_a_400_naming_the_field(alice_api, desk):
    response = alice_api.get(_url(desk, "?benchmark=no-such-coin"))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert "no-such-coin" in response.json()["errors"]["benchmark"][0]


def test_another_users_portfolio_is_404_with_a_benchmark(bob_api, desk):
    response = bob_api.get(_url(desk, "?days=all&benchmark=bitcoin"))
    assert response.status_code == 404
    assert "benchmark" not in response.json()


def test_missing_figures_say_why_over_the_api(alice_api, desk, today):
    set_price("ethereum", "50")
    body = alice_api.get(_url(desk, "?days=7&benchmark=ethereum")).json()
    assert body["benchmark"]["twr"] is None
    assert body["alpha"] is None
    assert body["benchmark"]["series"] == []
    assert set(body["missing"]) == {"benchmark.twr", "alpha", "beta", "tracking_error", "information_ratio"}


def _buy(api, portfolio, coins: range) -> None:
    for i in coins:
        set_price(f"coin-{i}", "10")
        _prices(f"coin-{i}", {timezone.now().date() - DAY: "9"})
        assert order(api, portfolio, "buy", "1", coin=f"coin-{i}").status_code == 201


def test_performance_with_a_benchmark_costs_the_same_queries(alice_api, desk, django_assert_num_queries):
    url = _url(desk, "?days=30&benchmark=bitcoin")
    _buy(alice_api, desk, range(1))
    with django_assert_num_queries(BENCHMARK_QUERIES):
        assert alice_api.get(url).status_code == 200
    _buy(alice_api, desk, range(1, 5))
    with django_assert_num_queries(BENCHMARK_QUERIES):
        body = alice_api.get(url).json()
    assert body["benchmark"]["twr"] is not None


# the portfolio and its performance (9), then the coin with its quote and its prices before and in the range (3)
BENCHMARK_QUERIES = 12


# --- the page --------------------------------------------------------------------------------------


def test_the_page_compares_with_bitcoin_by_default(client, alice, desk):
    set_price("tether", "1")  # no stored history: not offered
    _prices("ethereum", {timezone.now().date() - DAY: "40"})
    set_price("ethereum", "50")
    log_in(client, alice)
    page = client.get(f"/portfolios/{desk.pk}/").content.decode()
    assert 'data-testid="benchmark"' in page
    assert "vs Bitcoin" in page
    picker = page.split('name="benchmark"')[1].split("</select>")[0]
    assert '<option value="bitcoin" selected>' in picker
    assert '<option value="ethereum">' in picker
    assert "tether" not in picker
    for key in ("alpha", "beta", "tracking_error", "information_ratio"):
        assert f'data-benchmark-figure="{key}"' in page, key
    assert 'data-benchmark-twr="performance-chart"' in page
    assert "/static/js/benchmark.js" in page
    assert "<script>" not in page
    assert " style=" not in page


def test_the_page_takes_another_coin(client, alice, desk):
    _prices("ethereum", {timezone.now().date() - DAY: "40"})
    set_price("ethereum", "50")
    log_in(client, alice)
    page = client.get(f"/portfolios/{desk.pk}/?benchmark=ethereum").content.decode()
    assert "vs Ethereum" in page
    assert '<option value="ethereum" selected>' in page.split('name="benchmark"')[1].split("</select>")[0]
    assert "its stored history begins on" in page  # yesterday: the 30 days are not covered


def test_the_page_falls_back_to_bitcoin_for_an_unknown_coin(client, alice, desk):
    log_in(client, alice)
    response = client.get(f"/portfolios/{desk.pk}/?benchmark=no-such-coin")
    assert response.status_code == 200
    assert "vs Bitcoin" in response.content.decode()
