"""Protective orders: stops, stop limits, take profits, trailing stops and brackets, triggered by price writes."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import make_user, needs_concurrent_db, run_concurrently
from cryptodesk.errors import Conflict
from portfolios import services
from portfolios.models import Holding, Order, Portfolio, Trade
from portfolios.tasks import fill_limit_orders_task

from .conftest import order, set_price

D = Decimal


def _place(user, portfolio, side: str, quantity: str, type: str, **terms) -> Order:
    placed, _ = services.place_order(
        user=user,
        portfolio_id=portfolio.pk,
        coin_id="bitcoin",
        side=side,
        type=type,
        quantity=D(quantity),
        **{name: D(value) for name, value in terms.items()},
    )
    return placed


def _tick(price: str) -> int:
    """A price write and what the prices-updated hook runs for it: triggers, then limit fills."""
    set_price("bitcoin", price)
    return fill_limit_orders_task(["bitcoin"])


def _holding(portfolio) -> Holding:
    return Holding.objects.get(portfolio=portfolio, coin_id="bitcoin")


@pytest.fixture
def long_two(alice, alice_portfolio):
    """Alice holds 2 bitcoin bought at 100."""
    _place(alice, alice_portfolio, "buy", "2", "market")
    return alice_portfolio


def test_a_sell_stop_holds_its_coins_and_fills_at_the_first_price_past_its_trigger(alice, long_two):
    stop = _place(alice, long_two, "sell", "2", "stop", stop_price="90")
    assert (stop.status, stop.reserved, _holding(long_two).reserved_quantity) == ("open", D(2), D(2))
    with pytest.raises(services.OrderRefused):
        _place(alice, long_two, "sell", "0.5", "market")  # every coin is held by the stop
    assert _tick("95") == 0
    assert _tick("85") == 1  # gapped through 90: filled at 85, the first price seen
    stop.refresh_from_db()
    assert (stop.status, stop.filled_price, stop.triggered_at is not None) == ("filled", D(85), True)
    holding = _holding(long_two)
    assert (holding.quantity, holding.reserved_quantity) == (D(0), D(0))
    trade = Trade.objects.get(order=stop)
    assert (trade.price, trade.notional, trade.fee) == (D(85), D(170), D("0.17"))
    assert _tick("80") == 0  # filled once


def test_a_take_profit_sells_once_the_price_rises_to_it(alice, long_two):
    take = _place(alice, long_two, "sell", "1", "take_profit", stop_price="120")
    assert _tick("119.99") == 0
    assert _tick("125") == 1
    take.refresh_from_db()
    assert (take.status, take.filled_price) == ("filled", D(125))


def test_a_stop_limit_becomes_a_limit_at_its_trigger(alice, long_two):
    stop = _place(alice, long_two, "sell", "1", "stop_limit", stop_price="90", limit_price="88")
    assert _tick("80") == 1  # triggered, but below its limit: it rests as a limit sell at 88
    stop.refresh_from_db()
    assert (stop.status, stop.triggered_at is not None) == ("open", True)
    assert _tick("87") == 0
    assert _tick("89") == 1
    stop.refresh_from_db()
    assert (stop.status, stop.filled_price) == ("filled", D(89))  # the better of its limit and the market


def test_a_trailing_sell_ratchets_up_only_and_fills_past_its_stop(alice, long_two):
    trail = _place(alice, long_two, "sell", "2", "trailing_stop", trail_percent="10")
    assert (trail.trail_peak, trail.stop_price) == (D(100), D(90))
    for price, peak, stop in [
        ("120", 120, 108),
        ("110", 120, 108),
        ("130.5", "130.5", "117.45"),
        ("118", "130.5", "117.45"),
    ]:
        assert _tick(price) == 0
        trail.refresh_from_db()
        assert (trail.trail_peak, trail.stop_price) == (D(peak), D(stop)), price
    assert _tick("117") == 1
    trail.refresh_from_db()
    assert (trail.status, trail.filled_price) == ("filled", D(117))


def test_a_trailing_buy_by_amount_follows_the_price_down(alice, alice_portfolio):
    trail = _place(alice, alice_portfolio, "buy", "1", "trailing_stop", trail_amount="5")
    assert (trail.stop_price, trail.reserved) == (D(105), D("105.105"))  # its cost at the stop, fee included
    assert _tick("90") == 0
    trail.refresh_from_db()
    assert (trail.trail_peak, trail.stop_price) == (D(90), D(95))
    assert _tick("96") == 1
    trail.refresh_from_db()
    assert (trail.status, trail.filled_price) == ("filled", D(96))
    alice_portfolio.refresh_from_db()
    assert (alice_portfolio.cash, alice_portfolio.reserved_cash) == (D("9903.904"), D(0))


def test_a_buy_stop_that_gaps_beyond_the_cash_is_rejected_and_releases_its_cash(alice, alice_portfolio):
    stop = _place(alice, alice_portfolio, "buy", "90", "stop", stop_price="110")  # 9,909.90 held of 10,000
    assert _tick("150") == 0
    stop.refresh_from_db()
    assert (stop.status, stop.reserved) == ("rejected", D(0))
    assert "Not enough cash" in stop.reject_reason
    alice_portfolio.refresh_from_db()
    assert (alice_portfolio.cash, alice_portfolio.reserved_cash) == (D(10000), D(0))


def test_a_bracket_places_one_cancels_the_other_sells_when_the_buy_fills(alice, alice_portfolio):
    buy = _place(alice, alice_portfolio, "buy", "1", "market", stop_loss_price="90", take_profit_price="120")
    stop, take = Order.objects.filter(parent=buy).order_by("type")
    assert (stop.type, stop.stop_price, stop.reserved) == ("stop", D(90), D(1))
    assert (take.type, take.stop_price, take.reserved) == ("take_profit", D(120), D(0))  # the coins are held once
    assert stop.oco_group == take.oco_group is not None
    assert _holding(alice_portfolio).reserved_quantity == D(1)
    assert _tick("125") == 1
    stop.refresh_from_db()
    take.refresh_from_db()
    assert (take.status, take.filled_price, stop.status) == ("filled", D(125), "cancelled")
    holding = _holding(alice_portfolio)
    assert (holding.quantity, holding.reserved_quantity) == (D(0), D(0))
    assert _tick("80") == 0  # the cancelled stop never fires


def test_a_limit_buys_bracket_waits_for_its_fill(alice, alice_portfolio):
    buy = _place(alice, alice_portfolio, "buy", "1", "limit", limit_price="95", stop_loss_price="90")
    assert not Order.objects.filter(parent=buy).exists()
    assert _tick("94") == 1
    child = Order.objects.get(parent=buy)
    assert (child.type, child.side, child.quantity, child.stop_price, child.oco_group) == (
        "stop",
        "sell",
        D(1),
        D(90),
        None,
    )
    assert _tick("89") == 1
    child.refresh_from_db()
    assert (child.status, child.filled_price) == ("filled", D(89))


def test_cancelling_the_bracket_leg_that_holds_the_coins_hands_them_to_the_other(alice, alice_api, alice_portfolio):
    buy = _place(alice, alice_portfolio, "buy", "1", "market", stop_loss_price="90", take_profit_price="120")
    stop, take = Order.objects.filter(parent=buy).order_by("type")
    assert alice_api.post(f"/api/v1/orders/{stop.pk}/cancel").status_code == 200
    take.refresh_from_db()
    assert (take.reserved, _holding(alice_portfolio).reserved_quantity) == (D(1), D(1))
    assert alice_api.post(f"/api/v1/orders/{take.pk}/cancel").status_code == 200
    assert _holding(alice_portfolio).reserved_quantity == D(0)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "stop"}, "stop_price"),
        ({"type": "stop", "side": "buy", "stop_price": "95"}, "stop_price"),  # a buy stop below the market
        ({"type": "stop", "side": "sell", "stop_price": "105"}, "stop_price"),  # would trigger at once
        ({"type": "stop", "stop_price": "110", "limit_price": "111"}, "limit_price"),
        ({"type": "stop_limit", "stop_price": "110"}, "limit_price"),
        ({"type": "take_profit", "side": "buy", "stop_price": "120"}, "side"),
        ({"type": "take_profit", "side": "sell", "stop_price": "90"}, "stop_price"),
        ({"type": "trailing_stop"}, "trail_percent"),
        ({"type": "trailing_stop", "trail_percent": "5", "trail_amount": "5"}, "trail_percent"),
        ({"type": "trailing_stop", "trail_percent": "100"}, "trail_percent"),
        ({"type": "trailing_stop", "trail_percent": "0"}, "trail_percent"),
        ({"type": "trailing_stop", "side": "sell", "trail_amount": "100"}, "trail_amount"),
        ({"type": "trailing_stop", "trail_amount": "1e2000000"}, "trail_amount"),
        ({"type": "trailing_stop", "stop_price": "90", "trail_percent": "5"}, "stop_price"),
        ({"type": "limit", "limit_price": "90", "trail_amount": "5"}, "trail_amount"),
        ({"stop_loss_price": "100"}, "stop_loss_price"),  # not below the entry (the market, 100)
        ({"take_profit_price": "99"}, "take_profit_price"),
        ({"type": "limit", "limit_price": "95", "stop_loss_price": "96"}, "stop_loss_price"),
        ({"side": "sell", "stop_loss_price": "90"}, "stop_loss_price"),  # a sell takes no bracket
        ({"stop_price": "-1", "type": "stop"}, "stop_price"),
        ({"stop_price": "abc", "type": "stop"}, "stop_price"),
    ],
)
def test_protective_order_bad_input_is_a_400_naming_the_field(alice_api, long_two, changes, field):
    body = {"portfolio": long_two.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1", **changes}
    before = Order.objects.count()
    response = alice_api.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert Order.objects.count() == before
    holding = _holding(long_two)
    assert holding.reserved_quantity == D(0)


def test_the_api_shows_the_protective_terms(alice_api, alice_portfolio):
    response = alice_api.post(
        "/api/v1/orders/",
        {
            "portfolio": alice_portfolio.pk,
            "coin": "bitcoin",
            "side": "buy",
            "type": "trailing_stop",
            "quantity": "1",
            "trail_percent": "2.5",
            "take_profit_price": "150",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert {name: body[name] for name in ("stop_price", "trail_percent", "trail_amount", "triggered_at")} == {
        "stop_price": "102.5",
        "trail_percent": "2.5",
        "trail_amount": None,
        "triggered_at": None,
    }
    assert (body["parent"], body["oco_group"], body["take_profit_price"]) == (None, None, "150")
    assert alice_api.get(f"/api/v1/orders/{body['id']}/").json() == body


def test_an_idempotent_protective_order_replays_and_refuses_other_terms(alice_api, long_two):
    def stop(stop_price: str):
        return order(alice_api, long_two, "sell", "1", type="stop", stop_price=stop_price, HTTP_IDEMPOTENCY_KEY="k1")

    first = stop("90")
    assert first.status_code == 201
    again = stop("90")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert stop("80").status_code == 422


def test_one_unbookable_trigger_stops_no_other(alice, bob, long_two, bob_portfolio):
    _place(bob, bob_portfolio, "buy", "1", "market")
    theirs = _place(bob, bob_portfolio, "sell", "1", "stop", stop_price="90")
    mine = _place(alice, long_two, "sell", "2", "stop", stop_price="90")
    Portfolio.objects.filter(pk=long_two.pk).update(cash=D(10) ** 20 - 1)  # its proceeds would not fit the column
    assert _tick("85") == 1
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (theirs.status, mine.status) == ("filled", "rejected")
    assert mine.reject_reason
    assert _holding(long_two).reserved_quantity == D(0)  # what it held is given back


def test_trigger_statements_do_not_grow_with_the_open_orders(db, btc):
    def statements_for(count: int) -> int:
        Order.objects.filter(type="trailing_stop").update(status="cancelled")  # the other run's
        for index in range(count):
            user = make_user(f"trader{count}-{index}@example.com")
            portfolio = services.create_portfolio(owner=user, name="P", starting_cash=D(1000))
            _place(user, portfolio, "buy", "1", "market")
            _place(user, portfolio, "sell", "1", "trailing_stop", trail_percent="10")
        set_price("bitcoin", "100")
        _tick("101")  # every trailing stop moves up: written, none triggered
        set_price("bitcoin", str(102 + count))
        with CaptureQueriesContext(connection) as queries:
            assert services.trigger_orders(coin_ids=["bitcoin"]) == 0
        assert Order.objects.filter(type="trailing_stop", trail_peak=D(102 + count)).count() == count
        return len(queries)

    assert statements_for(3) == statements_for(30)


def test_others_cannot_cancel_a_protective_order(bob_api, alice, long_two):
    stop = _place(alice, long_two, "sell", "1", "stop", stop_price="90")
    assert bob_api.post(f"/api/v1/orders/{stop.pk}/cancel").status_code == 404
    assert bob_api.get(f"/api/v1/orders/{stop.pk}/").status_code == 404
    assert Portfolio.objects.get(pk=long_two.pk).owner == alice


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_a_trigger_racing_a_cancel_and_another_trigger_settles_exactly_once(alice, alice_portfolio):
    for _ in range(5):
        buy = _place(alice, alice_portfolio, "buy", "1", "market", stop_loss_price="90", take_profit_price="120")
        stop, take = Order.objects.filter(parent=buy).order_by("type")
        set_price("bitcoin", "85")

        def work(index: int, stop_id=stop.pk) -> tuple[int, str]:
            if index == 0:
                try:
                    services.cancel_order(user=alice, order_id=stop_id)
                except Conflict:
                    return index, "late"
                return index, "cancelled"
            return index, str(services.trigger_orders(coin_ids=["bitcoin"]))

        outcomes = [outcome for _, outcome in sorted(run_concurrently(3, work))]
        stop.refresh_from_db()
        take.refresh_from_db()
        if outcomes[0] == "cancelled":  # the cancel won: the take profit holds the coins now, nothing sold
            assert (stop.status, take.status, take.reserved) == ("cancelled", "open", D(1))
            services.cancel_order(user=alice, order_id=take.pk)
        else:
            assert sorted(outcomes[1:]) == ["0", "1"]  # one of the two passes filled it
            assert (stop.status, take.status) == ("filled", "cancelled")
            assert Trade.objects.filter(order=stop).count() == 1
        holding = _holding(alice_portfolio)
        assert holding.reserved_quantity == D(0)
        set_price("bitcoin", "100")
        if holding.quantity:
            _place(alice, alice_portfolio, "sell", str(holding.quantity), "market")
