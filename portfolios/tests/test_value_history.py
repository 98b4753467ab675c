"""Value history rebuilt from trades, transfers and stored prices: every bucket of a range (not only the days with a
snapshot), exact decimals, a constant number of queries; snapshots agree with it; the risk panel says why a figure
is missing and when it will appear."""

import itertools
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import PASSWORD
from cryptodesk.money import CONTEXT, quantize
from market.models import PricePoint
from portfolios import selectors, services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot, Trade

from .conftest import set_price

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.astimezone(UTC).date(), time.min, tzinfo=UTC)


def _open(portfolio: Portfolio, when: datetime) -> Portfolio:
    """The portfolio and its starting deposit, as if made at `when`."""
    Portfolio.objects.filter(pk=portfolio.pk).update(created_at=when)
    CashTransfer.objects.filter(portfolio=portfolio).update(created_at=when)
    PortfolioSnapshot.objects.filter(portfolio=portfolio).delete()
    portfolio.refresh_from_db()
    return portfolio


def _trade(user, portfolio, side: str, quantity: str, *, price: str, when: datetime, coin: str = "bitcoin") -> Trade:
    """A market fill at `price`, booked at `when`."""
    set_price(coin, price)
    order, _ = services.place_order(
        user=user, portfolio_id=portfolio.pk, coin_id=coin, side=side, type="market", quantity=Decimal(quantity)
    )
    Trade.objects.filter(order=order).update(executed_at=when)
    return Trade.objects.get(order=order)


def _prices(coin: str, points: dict[datetime, str]) -> None:
    PricePoint.objects.bulk_create(
        PricePoint(coin_id=coin, ts=ts, price=Decimal(price)) for ts, price in points.items()
    )


def _value(cash: Decimal, holdings: dict[str, tuple[Decimal, Decimal]]) -> Decimal:
    """cash + Σ quantity × price, each holding rounded as the valuation rounds it."""
    with localcontext(CONTEXT):
        return cash + sum((quantize(qty * price) for qty, price in holdings.values()), Decimal(0))


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def desk(alice, alice_portfolio, now):
    """Opened 10 days ago with 10,000; bought 10 BTC at 100 eight days ago, sold 4 at 150 three days ago; daily
    prices at each day's last hour, hourly ones for the last two days. No snapshot at all."""
    today = _midnight(now)
    portfolio = _open(alice_portfolio, today - 10 * DAY + 9 * HOUR)
    buy = _trade(alice, portfolio, "buy", "10", price="100", when=today - 8 * DAY + 10 * HOUR)
    sell = _trade(alice, portfolio, "sell", "4", price="150", when=today - 3 * DAY + 10 * HOUR)
    daily = {today - days * DAY + 23 * HOUR: str(100 + 10 * (10 - days)) for days in range(2, 12)}
    hourly = {today - 2 * DAY + hours * HOUR + timedelta(minutes=5): str(200 + hours) for hours in range(48)}
    _prices("bitcoin", {**daily, **hourly})
    set_price("bitcoin", "260")
    PortfolioSnapshot.objects.filter(portfolio=portfolio).delete()
    portfolio.refresh_from_db()
    return {"portfolio": portfolio, "buy": buy, "sell": sell, "today": today, "daily": daily, "hourly": hourly}


def _expected_close(desk, close: datetime) -> Decimal:
    """The value at `close` (exclusive), worked out by hand from the fixture's trades and prices."""
    buy, sell = desk["buy"], desk["sell"]
    cash, quantity = Decimal(10_000), Decimal(0)
    with localcontext(CONTEXT):
        if buy.executed_at < close:
            cash -= buy.notional + buy.fee
            quantity += buy.quantity
        if sell.executed_at < close:
            cash += sell.notional - sell.fee
            quantity -= sell.quantity
    stored = {**desk["daily"], **desk["hourly"]}
    before = [ts for ts in stored if ts < close]
    price = Decimal(stored[max(before)]) if before else buy.price
    return _value(cash, {"bitcoin": (quantity, price)})


def test_every_day_of_a_range_is_rebuilt_without_any_snapshot(desk, now):
    history = selectors.value_history(desk["portfolio"], days=90, now=now)
    assert history.interval == DAY
    opened = desk["today"] - 10 * DAY
    assert [point.time for point in history.points] == [opened + n * DAY for n in range(11)]
    for point in history.points[:-1]:
        assert point.total_value == _expected_close(desk, point.time + DAY), point.time
    live = selectors.portfolio_valuation(desk["portfolio"])
    assert history.points[-1].total_value == live.total_value  # the open bucket is the live value
    assert history.points[-1].total_value == _value(desk["portfolio"].cash, {"bitcoin": (Decimal(6), Decimal(260))})


def test_hourly_buckets_value_each_hour_at_the_last_price_stored_in_or_before_it(desk, now):
    history = selectors.value_history(desk["portfolio"], days=7, now=now)
    assert history.interval == HOUR
    first = (now - 7 * DAY).replace(minute=0, second=0, microsecond=0)
    times = [point.time for point in history.points]
    assert times == [first + n * HOUR for n in range(len(times))]
    assert times[-1] == now.replace(minute=0, second=0, microsecond=0)
    for point in history.points[:-1]:
        assert point.total_value == _expected_close(desk, point.time + HOUR), point.time


def test_a_reconstructed_day_equals_the_snapshot_taken_that_day(alice, alice_portfolio, now):
    today = _midnight(now)
    portfolio = _open(alice_portfolio, today - 5 * DAY)
    _trade(alice, portfolio, "buy", "3.5", price="101.25", when=today - 4 * DAY + 6 * HOUR)
    _trade(alice, portfolio, "buy", "2", price="99.5", coin="ethereum", when=today - 3 * DAY + 6 * HOUR)
    closing = {"bitcoin": "123.456789", "ethereum": "98.7654321"}
    for coin, price in closing.items():
        # the sync writes each price as a point and as the quote, the snapshot at 23:55 reads the quote
        _prices(coin, {today - 2 * DAY + 12 * HOUR: "1", today - DAY - timedelta(minutes=6): price})
        set_price(coin, price, updated=today - DAY - timedelta(minutes=6))
    snapshot = services.take_snapshot(portfolio_id=portfolio.pk, now=today - timedelta(minutes=5))
    assert snapshot.date == (today - DAY).date()
    history = selectors.value_history(portfolio, days=90, now=now)
    (point,) = [point for point in history.points if point.time == today - DAY]
    assert point.total_value == snapshot.total_value
    assert (point.cash, point.market_value) == (snapshot.cash, snapshot.market_value)


def test_a_coin_without_stored_prices_is_valued_at_its_last_trade_price(alice, alice_portfolio, now):
    today = _midnight(now)
    portfolio = _open(alice_portfolio, today - 3 * DAY)
    buy = _trade(alice, portfolio, "buy", "2", price="80", coin="obscure", when=today - 2 * DAY + HOUR)
    history = selectors.value_history(portfolio, days=90, now=now)
    assert [point.total_value for point in history.points[:-1]] == [
        Decimal(10_000),
        Decimal(10_000) - buy.fee,  # 2 coins worth the 160 paid for them
        Decimal(10_000) - buy.fee,
    ]


@pytest.mark.parametrize(("days", "step"), [("7", 3600), ("30", 3600), ("90", 86400), ("365", 86400), ("all", 86400)])
def test_the_history_api_has_an_evenly_spaced_monotonic_time_axis_on_every_range(alice_api, desk, now, days, step):
    response = alice_api.get(f"/api/v1/portfolios/{desk['portfolio'].pk}/history/?days={days}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["interval_s"] == step
    times = [datetime.fromisoformat(point["time"]) for point in body["points"]]
    assert len(times) >= 2
    assert all(later - earlier == timedelta(seconds=step) for earlier, later in itertools.pairwise(times))
    assert times[0] >= _midnight(desk["portfolio"].created_at)  # never before the portfolio existed
    live = selectors.portfolio_valuation(desk["portfolio"]).total_value
    assert Decimal(body["points"][-1]["total_value"]) == live
    assert isinstance(body["points"][-1]["total_value"], str)
    assert set(body) >= {"days", "interval_s", "points", "time_weighted_return"}


def test_the_history_api_is_the_owners_alone_and_checks_its_range(alice_api, bob_api, desk):
    url = f"/api/v1/portfolios/{desk['portfolio'].pk}/history/"
    assert bob_api.get(url).status_code == 404
    bad = alice_api.get(f"{url}?days=3")
    assert bad.status_code == 400
    assert "days" in bad.json()["errors"]


def test_queries_do_not_grow_with_buckets_trades_or_coins(alice, desk, now, django_assert_num_queries):
    portfolio = desk["portfolio"]
    live = selectors.portfolio_valuation(portfolio)
    with django_assert_num_queries(4) as few:
        short = selectors.value_history(portfolio, days=7, now=now, live=live)
    with django_assert_num_queries(len(few.captured_queries)):
        long = selectors.value_history(portfolio, days=365, now=now, live=live)
    assert len(short.points) > len(long.points) > 5
    for n in range(6):
        _trade(alice, portfolio, "buy", "0.5", price=str(10 + n), coin=f"coin-{n}", when=now - (n + 1) * DAY)
        _prices(f"coin-{n}", {now - (n + 1) * DAY - HOUR: "9", now - HOUR: "12"})
    portfolio.refresh_from_db()
    live = selectors.portfolio_valuation(portfolio)
    with django_assert_num_queries(len(few.captured_queries)):
        selectors.value_history(portfolio, days=30, now=now, live=live)


def test_performance_has_a_point_for_every_day_before_snapshots_accumulate(desk, now):
    result = selectors.performance(desk["portfolio"], days=7)
    today = desk["today"].date()
    assert [day for day, _ in result.series] == [today - timedelta(days=n) for n in range(7, -1, -1)]
    assert result.time_weighted_return is not None
    closes = {
        point.time.date(): point.total_value for point in selectors.value_history(desk["portfolio"], days=90).points
    }
    assert [value for _, value in result.series] == [closes[day] for day, _ in result.series]


def test_a_snapshot_stands_for_its_day_in_the_returns(desk, now):
    """A recorded close is what the portfolio was worth that evening: the returns read it where there is one."""
    day = desk["today"].date() - timedelta(days=5)
    PortfolioSnapshot.objects.create(
        portfolio=desk["portfolio"], date=day, cash=0, market_value=0, total_value=Decimal("12345.6")
    )
    series = dict(selectors.performance(desk["portfolio"], days=7).series)
    assert series[day] == Decimal("12345.6")


# --- why a risk figure is missing ----------------------------------------------------------------


def _reasons(portfolio) -> dict[str, str]:
    return selectors.risk(portfolio).missing


def _day(moment) -> str:
    return f"{moment:%b} {moment.day}, {moment.year}"


def test_a_new_portfolio_says_when_each_figure_will_appear(alice_portfolio, now):
    risk = selectors.risk(alice_portfolio)
    assert risk.observations == 1  # today, measured against the money put in
    assert (risk.volatility, risk.sharpe) == (None, None)
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    expected = f"Needs at least 2 daily returns; 1 more after 1 more day of history (on {_day(tomorrow)})."
    assert risk.missing["volatility"] == expected
    assert risk.missing["sharpe"] == expected
    assert risk.max_drawdown is not None
    assert "max_drawdown" not in risk.missing
    assert risk.missing["largest_holding_pct"] == "No coins held: it appears with your first buy."
    assert risk.missing["herfindahl_index"] == "No coins held: it appears with your first buy."


def test_an_empty_portfolio_says_money_must_come_first(alice):
    empty = services.create_portfolio(owner=alice, name="Empty", starting_cash=Decimal(0))
    reasons = _reasons(empty)
    for name in ("volatility", "sharpe", "max_drawdown", "value_at_risk_95"):
        assert reasons[name] == (
            "Needs money in the portfolio: deposit cash, then each day adds a daily return (at least "
            f"{2 if name in {'volatility', 'sharpe'} else 1} needed)."
        )


def test_cash_that_never_moves_has_no_sharpe_ratio_and_says_why(alice_portfolio, now):
    _open(alice_portfolio, now - 5 * DAY)
    risk = selectors.risk(alice_portfolio)
    assert risk.observations == 6
    assert risk.volatility == 0
    assert risk.sharpe is None
    assert risk.missing["sharpe"] == (
        "The value has not moved (0 volatility): there is no risk to divide by until it does."
    )


def test_the_risk_api_and_panel_say_why(client, alice, alice_api, alice_portfolio, now):
    body = alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/risk/").json()
    assert body["volatility"] is None
    assert body["missing"]["volatility"].startswith("Needs at least 2 daily returns; 1 more after 1 more day")
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    page = client.get(f"/portfolios/{alice_portfolio.pk}/").content.decode()
    assert 'data-testid="risk-missing-volatility">Needs at least 2 daily returns; 1 more after 1 more day' in page
    assert 'data-testid="risk-missing-max_drawdown"' not in page


# --- the dashboard: every portfolio rebuilt on the same buckets, summed -----------------------------


def _dashboard(client, user, days: str) -> dict:
    assert client.post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 302
    response = client.get(f"/dashboard/series/?days={days}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def two_desks(alice, desk):
    """The desk (opened 10 days ago) and a second portfolio opened 6 days ago, trading ether on other days."""
    today = desk["today"]
    second = services.create_portfolio(owner=alice, name="Second", starting_cash=Decimal("2500.25"))
    second = _open(second, today - 6 * DAY + 15 * HOUR)
    _trade(alice, second, "buy", "1.5", price="90.5", coin="ethereum", when=today - 5 * DAY + 2 * HOUR)
    _trade(alice, second, "sell", "0.25", price="95.125", coin="ethereum", when=today - DAY + 20 * HOUR)
    _prices("ethereum", {today - 4 * DAY + 12 * HOUR: "91.75", today - 2 * DAY + 3 * HOUR: "97.3"})
    set_price("ethereum", "99.99")
    set_price("bitcoin", "260")
    PortfolioSnapshot.objects.filter(portfolio=second).delete()
    return list(Portfolio.objects.filter(owner=alice).order_by("created_at"))  # their cash as it stands now


@pytest.mark.parametrize("days", ["7", "30", "90", "all"])
def test_the_dashboard_series_is_each_portfolios_history_summed_bucket_by_bucket(client, alice, two_desks, now, days):
    body = _dashboard(client, alice, days)
    key = selectors.PERFORMANCE_DAYS[days]
    own = [selectors.value_history(portfolio, days=key, now=now) for portfolio in two_desks]
    expected: dict[datetime, Decimal] = {}
    with localcontext(CONTEXT):
        for history in own:
            for point in history.points:
                expected[point.time] = expected.get(point.time, Decimal(0)) + point.total_value
    assert body["interval_s"] == int(own[0].interval.total_seconds())
    times = [datetime.fromisoformat(point["time"]) for point in body["points"]]
    assert times == sorted(expected)  # the earlier portfolio's buckets: the later one counts 0 before it opened
    assert [Decimal(point["total_value"]) for point in body["points"]] == [expected[time] for time in times]
    live = [selectors.portfolio_valuation(portfolio).total_value for portfolio in two_desks]
    assert Decimal(body["points"][-1]["total_value"]) == live[0] + live[1]
    assert all(isinstance(point["total_value"], str) for point in body["points"])


def test_the_combined_history_adds_exact_decimals_and_books_each_transfer_in_its_bucket(alice, two_desks, now):
    first, second = two_desks
    services.transfer_cash(user=alice, portfolio_id=second.pk, kind="deposit", amount=Decimal("0.000000000000000001"))
    second.refresh_from_db()
    history = selectors.combined_history(selectors.valuations_for(alice), days=90, now=now)
    by_day = {point.time: point for point in history.points}
    opened = _midnight(first.created_at)
    assert history.points[0].time == opened
    assert (by_day[opened].net_flow, by_day[_midnight(second.created_at)].net_flow) == (10_000, Decimal("2500.25"))
    assert history.points[-1].net_flow == Decimal("0.000000000000000001")
    assert sum(point.net_flow for point in history.points) == Decimal("12500.250000000000000001")
    live = [selectors.portfolio_valuation(portfolio) for portfolio in two_desks]
    assert history.points[-1].total_value == live[0].total_value + live[1].total_value
    assert history.points[-1].cash == live[0].cash + live[1].cash


def test_a_user_whose_only_snapshot_is_today_sees_the_whole_history(client, alice, desk, now):
    services.take_snapshot(portfolio_id=desk["portfolio"].pk, now=now)
    assert list(PortfolioSnapshot.objects.values_list("date", flat=True)) == [now.date()]
    body = _dashboard(client, alice, "90")
    own = selectors.value_history(desk["portfolio"], days=90, now=now)
    assert len(body["points"]) == 11  # opened 10 days ago: every day, not one point
    assert [Decimal(point["total_value"]) for point in body["points"]] == [point.total_value for point in own.points]
    hourly = _dashboard(client, alice, "7")["points"]
    assert len(hourly) == 7 * 24 + 1


def test_the_dashboard_return_books_transfers_as_money_put_in(client, alice, desk, now):
    services.transfer_cash(user=alice, portfolio_id=desk["portfolio"].pk, kind="deposit", amount=Decimal(5000))
    desk["portfolio"].refresh_from_db()
    body = _dashboard(client, alice, "all")
    history = selectors.value_history(desk["portfolio"], days=None, now=now)
    series = [(point.time, point.total_value, point.net_flow) for point in history.points]
    series.insert(0, (series[0][0] - DAY, Decimal(0), Decimal(0)))  # opened within the range: from 0
    assert series[1][2] == 10_000
    assert series[-1][2] == 5000
    expected = selectors.series_time_weighted_return(series)
    assert expected is not None
    assert Decimal(body["time_weighted_return"]) == expected


def test_the_dashboard_series_queries_do_not_grow_with_portfolios(client, alice, now, django_assert_num_queries):
    today = _midnight(now)

    def book(n: int) -> None:
        portfolio = _open(
            services.create_portfolio(owner=alice, name=f"Book {n}", starting_cash=Decimal(1000)), today - (n + 3) * DAY
        )
        _trade(alice, portfolio, "buy", "0.5", price=str(20 + n), coin=f"coin-{n}", when=today - (n + 1) * DAY)
        _prices(f"coin-{n}", {today - (n + 1) * DAY + HOUR: str(21 + n), now - HOUR: str(22 + n)})

    book(0)
    valuations = selectors.valuations_for(alice)
    with django_assert_num_queries(4):  # trades, transfers, prices before the range, prices in it
        one = selectors.combined_history(valuations, days=30, now=now)
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    client.get("/dashboard/series/?days=30")  # warm: the device session is touched on the first request
    with CaptureQueriesContext(connection) as single:
        client.get("/dashboard/series/?days=30")
    for n in range(1, 5):
        book(n)
    valuations = selectors.valuations_for(alice)
    with django_assert_num_queries(4):
        five = selectors.combined_history(valuations, days=30, now=now)
    with django_assert_num_queries(len(single.captured_queries)):
        client.get("/dashboard/series/?days=30")
    assert len(five.points) > len(one.points) > 24  # the oldest book opened earlier: more hours
