"""Paper-trading a strategy: it acts on the newest bar once per bar, through the order service, and reports drift."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from market import hooks
from market.models import Coin, PricePoint, Quote
from portfolios import pricing
from portfolios import services as portfolio_services
from portfolios.models import Order
from strategies import services
from strategies.models import PaperRun, Strategy

pytestmark = pytest.mark.django_db

# day 0 of the story is three days ago, so every bar the tests add lies in the past
TODAY = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def add_bar(coin: Coin, day: int, price: str) -> None:
    """A daily bar `day` days from day 0, and the quote at that price (fresh)."""
    PricePoint.objects.create(coin=coin, ts=TODAY + timedelta(days=day, hours=12), price=Decimal(price))
    Quote.objects.update_or_create(
        coin=coin, defaults={"current_price": Decimal(price), "last_updated": timezone.now()}
    )


@pytest.fixture
def coin(db) -> Coin:
    coin = Coin.objects.create(id="testcoin", symbol="tst", name="Test coin")
    for day, price in enumerate(["10", "9", "8", "7"], start=-4):
        add_bar(coin, day, price)
    return coin


@pytest.fixture
def setup(alice, coin):
    strategy = Strategy.objects.create(
        owner=alice, name="Fast cross", kind="sma_crossover", params={"fast": 2, "slow": 3}, coin=coin, timeframe="1d"
    )
    portfolio = portfolio_services.create_portfolio(owner=alice, name="Paper", starting_cash=Decimal("10000"))
    return strategy, portfolio


def test_start_stop_and_permissions(alice_api, bob_api, setup, bob):
    strategy, portfolio = setup
    bobs = portfolio_services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("10"))
    refused = alice_api.post(f"/api/v1/strategies/{strategy.pk}/paper/", {"portfolio": bobs.pk}, format="json")
    assert refused.status_code == 400
    assert "portfolio" in refused.json()["errors"]
    started = alice_api.post(f"/api/v1/strategies/{strategy.pk}/paper/", {"portfolio": portfolio.pk}, format="json")
    assert started.status_code == 201
    run = started.json()
    assert (run["status"], run["capital"], run["coin"]) == ("active", "10000", "testcoin")
    again = alice_api.post(f"/api/v1/strategies/{strategy.pk}/paper/", {"portfolio": portfolio.pk}, format="json")
    assert again.status_code == 400
    assert bob_api.get(f"/api/v1/paper-runs/{run['id']}/").status_code == 404
    assert bob_api.post(f"/api/v1/paper-runs/{run['id']}/stop/").status_code == 404
    assert alice_api.post(f"/api/v1/paper-runs/{run['id']}/stop/").json()["status"] == "stopped"
    assert (
        bob_api.post(f"/api/v1/strategies/{strategy.pk}/paper/", {"portfolio": bobs.pk}, format="json").status_code
        == 404
    )


def test_acts_once_per_bar_through_the_order_service(alice, setup, coin):
    strategy, portfolio = setup
    run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)
    assert services.evaluate_paper_run(run) is None  # no crossover on the newest bar yet
    add_bar(coin, 0, "12")  # fast 9.5 > slow 9: the fast average crosses above
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) == "buy"
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) is None  # same bar: nothing more
    buy = Order.objects.get()
    expected = (Decimal("10000") / (Decimal("12") * Decimal("1.001"))).quantize(
        Decimal("0.00000001"), rounding="ROUND_DOWN"
    )
    assert (buy.side, buy.status, buy.quantity) == ("buy", "filled", expected)
    add_bar(coin, 1, "5")  # still above: hold
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) is None
    add_bar(coin, 2, "3")  # crosses below: sell what the run bought
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) == "sell"
    sell = Order.objects.get(side="sell")
    assert sell.quantity == expected
    assert run.fills.count() == 2


def test_a_sync_drives_active_runs_and_a_stopped_run_does_nothing(alice, setup, coin):
    strategy, portfolio = setup
    run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)
    add_bar(coin, 0, "12")
    hooks.publish(hooks.PricesUpdated(coin_ids=("testcoin",), as_of=timezone.now(), source="coingecko"))
    assert Order.objects.filter(side="buy").count() == 1
    services.stop_paper_run(run=run)
    add_bar(coin, 1, "5")
    add_bar(coin, 2, "3")
    hooks.publish(hooks.PricesUpdated(coin_ids=("testcoin",), as_of=timezone.now(), source="coingecko"))
    assert not Order.objects.filter(side="sell").exists()
    assert PaperRun.objects.get().status == "stopped"


def test_drift_report_puts_paper_and_backtest_side_by_side(alice_api, alice, setup, coin):
    strategy, portfolio = setup
    run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)
    PaperRun.objects.filter(pk=run.pk).update(started_at=TODAY - timedelta(minutes=1))
    run.refresh_from_db()
    add_bar(coin, 0, "12")
    services.evaluate_paper_run(run)
    add_bar(coin, 1, "5")
    add_bar(coin, 2, "3")
    run.refresh_from_db()
    services.evaluate_paper_run(run)
    drift = alice_api.get(f"/api/v1/paper-runs/{run.pk}/").json()["drift"]
    assert [fill["side"] for fill in drift["paper"]["fills"]] == ["buy", "sell"]
    assert len(drift["backtest"]["trades"]) == 1
    trade = drift["backtest"]["trades"][0]
    assert (trade["entry_price"], trade["exit_price"]) == ("12", "3")
    # both bought at 12 and sold at 3 paying 10 bps each way: the same result, up to the 8-decimal quantity
    assert drift["paper"]["return"] == pytest.approx(drift["backtest"]["return"], abs=1e-6)
    assert abs(drift["return_difference"]) < 1e-6
    assert "fill at the last synced price" in drift["notes"]


def test_drift_report_without_a_quote_values_coins_at_the_last_close(alice, setup, coin):
    strategy, portfolio = setup
    run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)
    Quote.objects.filter(coin=coin).delete()
    run = PaperRun.objects.select_related("coin").get(pk=run.pk)
    report = services.drift_report(run)
    assert report["paper"]["equity"] == "10000"


@pytest.mark.parametrize(
    ("cash", "unit", "prices"),
    [
        ("10000", "1", ["12", "5", "3"]),
        # rounding notional and fee up at 18 places makes the plain quotient cost more than the cash
        ("0.00000434556", "0.000000000001", ["0.00000000001701611", "0.000000000005", "0.000000000003"]),
        ("1000", "0.01", ["0.123456789012345678", "0.05", "0.03"]),
    ],
)
def test_paper_buy_spends_at_most_its_cash_priced_like_an_order(alice, coin, cash, unit, prices):
    PricePoint.objects.filter(coin=coin).delete()
    for day, price in enumerate([10, 9, 8, 7], start=-4):  # the fixture's falling history, scaled
        add_bar(coin, day, str(price * Decimal(unit)))
    strategy = Strategy.objects.create(
        owner=alice, name="Fast cross", kind="sma_crossover", params={"fast": 2, "slow": 3}, coin=coin, timeframe="1d"
    )
    portfolio = portfolio_services.create_portfolio(owner=alice, name="Paper", starting_cash=Decimal(cash))
    run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)
    add_bar(coin, 0, prices[0])
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) == "buy"
    buy = Order.objects.get(side="buy")
    price = Decimal(prices[0])
    assert buy.quantity == pricing.max_buy_quantity(cash=Decimal(cash), price=price)
    priced = pricing.buy_cost(quantity=buy.quantity, price=price)
    assert (buy.filled_price, buy.fee) == (price, priced.fee)
    assert (buy.trade.notional, buy.trade.fee) == (priced.notional, priced.fee)
    assert priced.total <= Decimal(cash)
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal(cash) - priced.total
    # the run's own book agrees with the portfolio to the last digit, after the buy and after the sell
    run.refresh_from_db()
    assert services._run_book(run) == (portfolio.cash, buy.quantity)
    add_bar(coin, 1, prices[1])
    add_bar(coin, 2, prices[2])
    run.refresh_from_db()
    assert services.evaluate_paper_run(run) == "sell"
    sell = Order.objects.get(side="sell")
    sold = pricing.sell_proceeds(quantity=sell.quantity, price=Decimal(prices[2]))
    assert (sell.quantity, sell.fee) == (buy.quantity, sold.fee)
    portfolio.refresh_from_db()
    assert portfolio.cash == Decimal(cash) - priced.total + sold.total
    assert services._run_book(run) == (portfolio.cash, Decimal(0))
