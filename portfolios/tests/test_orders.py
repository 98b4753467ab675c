"""Paper trading over the API: exact fills and fees, refusals that move nothing, limits, cancels, idempotency."""

from decimal import Decimal

import pytest

from portfolios import services
from portfolios.models import CashTransfer, Holding, Order, Portfolio, Trade

from .conftest import order, set_price

pytestmark = pytest.mark.django_db


def test_create_portfolio(alice_api):
    response = alice_api.post("/api/v1/portfolios/", {"name": "Swing", "starting_cash": "2500.50"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["base_currency"], body["cash"], body["starting_cash"]) == (
        "Swing",
        "usd",
        "2500.5",
        "2500.5",
    )
    portfolio = Portfolio.objects.get(pk=body["id"])
    assert CashTransfer.objects.get(portfolio=portfolio).amount == Decimal("2500.5")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "starting_cash": "-1"}, "starting_cash"),
        ({"name": "X", "starting_cash": "1.0000000000000000001"}, "starting_cash"),
        ({"name": "", "starting_cash": "1"}, "name"),
        ({"name": "X", "starting_cash": "1", "base_currency": "eur"}, "base_currency"),
    ],
)
def test_create_portfolio_bad_input(alice_api, payload, field):
    response = alice_api.post("/api/v1/portfolios/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Portfolio.objects.exists()


def test_duplicate_portfolio_name(alice_api, alice_portfolio):
    response = alice_api.post("/api/v1/portfolios/", {"name": "Main", "starting_cash": "1"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_market_buy_then_sell_exact_cash_fee_cost_and_pnl(alice_api, alice_portfolio):
    bought = order(alice_api, alice_portfolio, "buy", "2")
    assert bought.status_code == 201
    body = bought.json()
    assert (body["status"], body["filled_price"], body["fee"]) == ("filled", "100", "0.2")
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("9799.8")  # 10000 - 200 - 0.2 fee
    holding = Holding.objects.get(portfolio=alice_portfolio)
    assert (holding.quantity, holding.average_cost) == (Decimal("2"), Decimal("100.1"))  # fees in the basis

    set_price("bitcoin", "110")
    sold = order(alice_api, alice_portfolio, "sell", "1").json()
    assert (sold["filled_price"], sold["fee"]) == ("110", "0.11")
    trade = Trade.objects.get(order_id=sold["id"])
    assert trade.realized_pnl == Decimal("9.79")  # 110 - 0.11 - 100.1
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("9909.69")
    summary = alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/summary/").json()
    assert summary["realized_pnl"] == "9.79"
    assert summary["unrealized_pnl"] == "9.9"  # 1 × 110 - 100.1
    assert summary["market_value"] == "110"
    assert summary["total_value"] == "10019.69"


def test_buy_beyond_cash_is_refused_and_nothing_moves(alice_api, alice_portfolio):
    response = order(alice_api, alice_portfolio, "buy", "100")  # 10000 + 10 fee > 10000
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Not enough cash: this order needs 10010 (fee included); 10000 is available."
    assert "quantity" in body["errors"]
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("10000")
    assert not Order.objects.exists()
    assert not Holding.objects.filter(quantity__gt=0).exists()


def test_sell_beyond_holding_is_refused(alice_api, alice_portfolio):
    order(alice_api, alice_portfolio, "buy", "1")
    response = order(alice_api, alice_portfolio, "sell", "1.5")
    assert response.status_code == 400
    assert "you hold 1, 1 of it available" in response.json()["detail"]
    assert Holding.objects.get().quantity == Decimal("1")


def test_sell_without_holding_is_refused(alice_api, alice_portfolio):
    response = order(alice_api, alice_portfolio, "sell", "1")
    assert response.status_code == 400
    assert "you hold 0" in response.json()["detail"]


def test_over_precise_quantity_is_400(alice_api, alice_portfolio):
    response = order(alice_api, alice_portfolio, "buy", "0.0000000000000000001")
    assert response.status_code == 400
    assert "quantity" in response.json()["errors"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"side": "hold"}, "side"),
        ({"type": "warp"}, "type"),
        ({"type": "stop"}, "stop_price"),
        ({"coin": "nocoin"}, "coin"),
        ({"type": "limit"}, "limit_price"),
        ({"limit_price": "5"}, "limit_price"),
    ],
)
def test_order_bad_input(alice_api, alice_portfolio, changes, field):
    body = {
        "portfolio": alice_portfolio.pk,
        "coin": "bitcoin",
        "side": "buy",
        "type": "market",
        "quantity": "1",
        **changes,
    }
    response = alice_api.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Order.objects.exists()


def test_numbers_are_accepted_as_json_numbers(alice_api, alice_portfolio):
    response = alice_api.post(
        "/api/v1/orders/",
        {"portfolio": alice_portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": 0.1},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["quantity"] == "0.1"


def test_market_order_on_a_stale_price_is_refused(alice_api, alice_portfolio, settings):
    from datetime import timedelta

    from django.utils import timezone

    set_price("bitcoin", "100", updated=timezone.now() - timedelta(hours=1))
    response = order(alice_api, alice_portfolio, "buy", "1")
    assert response.status_code == 400
    assert "older than 15 minutes" in response.json()["detail"]
    assert order(alice_api, alice_portfolio, "buy", "1", type="limit", limit_price="90").status_code == 201
    settings.PAPER_ALLOW_STALE_PRICES = True
    assert order(alice_api, alice_portfolio, "buy", "1").status_code == 201


def test_limit_buy_reserves_cash_and_cancel_releases_it(alice_api, alice_portfolio):
    response = order(alice_api, alice_portfolio, "buy", "10", type="limit", limit_price="90")
    assert response.status_code == 201
    placed = response.json()
    assert (placed["status"], placed["reserved"]) == ("open", "900.9")
    alice_portfolio.refresh_from_db()
    assert (alice_portfolio.cash, alice_portfolio.reserved_cash) == (Decimal("10000"), Decimal("900.9"))
    # the reservation counts: a market buy cannot spend it
    assert order(alice_api, alice_portfolio, "buy", "91").status_code == 400
    cancelled = alice_api.post(f"/api/v1/orders/{placed['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.reserved_cash == Decimal("0")
    again = alice_api.post(f"/api/v1/orders/{placed['id']}/cancel/")
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"


def test_limit_buy_fills_when_a_sync_crosses_at_the_better_price(
    alice_api, alice_portfolio, django_capture_on_commit_callbacks
):
    placed = order(alice_api, alice_portfolio, "buy", "10", type="limit", limit_price="90").json()
    set_price("bitcoin", "95")
    assert services.fill_limit_orders(coin_ids=["bitcoin"]) == 0
    set_price("bitcoin", "85")
    assert services.fill_limit_orders(coin_ids=["bitcoin"]) == 1
    filled = Order.objects.get(pk=placed["id"])
    assert (filled.status, filled.filled_price, filled.fee) == ("filled", Decimal("85"), Decimal("0.85"))
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.reserved_cash == Decimal("0")
    assert alice_portfolio.cash == Decimal("9149.15")  # 10000 - 850 - 0.85
    assert alice_api.post(f"/api/v1/orders/{placed['id']}/cancel/").status_code == 409


def test_limit_through_the_market_fills_at_once(alice_api, alice_portfolio, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = order(alice_api, alice_portfolio, "buy", "1", type="limit", limit_price="120")
    filled = Order.objects.get(pk=response.json()["id"])
    assert (filled.status, filled.filled_price) == ("filled", Decimal("100"))  # the market price, better than 120


def test_limit_sell_reserves_quantity(alice_api, alice_portfolio):
    order(alice_api, alice_portfolio, "buy", "2")
    placed = order(alice_api, alice_portfolio, "sell", "1.5", type="limit", limit_price="150").json()
    assert placed["reserved"] == "1.5"
    assert order(alice_api, alice_portfolio, "sell", "1").status_code == 400  # only 0.5 is free
    set_price("bitcoin", "160")
    services.fill_limit_orders()
    filled = Order.objects.get(pk=placed["id"])
    assert filled.filled_price == Decimal("160")  # better than the limit
    holding = Holding.objects.get()
    assert (holding.quantity, holding.reserved_quantity) == (Decimal("0.5"), Decimal("0"))


def test_prices_updated_hook_fills_limits(alice_api, alice_portfolio, django_capture_on_commit_callbacks):
    from market import hooks

    order(alice_api, alice_portfolio, "buy", "1", type="limit", limit_price="90")
    set_price("bitcoin", "80")
    hooks.publish(hooks.PricesUpdated(coin_ids=("bitcoin",), as_of=alice_portfolio.created_at, source="test"))
    assert Order.objects.get().status == "filled"


def test_idempotency_key_replays_and_refuses_another_body(alice_api, alice_portfolio):
    first = order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="abc-1")
    again = order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1
    other = order(alice_api, alice_portfolio, "buy", "2", HTTP_IDEMPOTENCY_KEY="abc-1")
    assert other.status_code == 422
    assert Order.objects.count() == 1
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("9899.9")


def test_keys_are_per_user(alice_api, bob_api, alice_portfolio, bob_portfolio):
    assert order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="same").status_code == 201
    assert order(bob_api, bob_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="same").status_code == 201


def test_refused_order_does_not_burn_its_key(alice_api, alice_portfolio):
    assert order(alice_api, alice_portfolio, "buy", "1000", HTTP_IDEMPOTENCY_KEY="k").status_code == 400
    set_price("bitcoin", "1")
    assert order(alice_api, alice_portfolio, "buy", "1000", HTTP_IDEMPOTENCY_KEY="k").status_code == 201


def test_transfers(alice_api, alice_portfolio):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    assert alice_api.post(url, {"kind": "deposit", "amount": "500"}, format="json").status_code == 201
    assert alice_api.post(url, {"kind": "withdrawal", "amount": "10500.01"}, format="json").status_code == 400
    assert alice_api.post(url, {"kind": "withdrawal", "amount": "500"}, format="json").status_code == 201
    assert alice_api.post(url, {"kind": "deposit", "amount": "0"}, format="json").status_code == 400
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("10000")


def test_trades_list_filters_and_csv(alice_api, alice_portfolio):
    order(alice_api, alice_portfolio, "buy", "2")
    set_price("ethereum", "10")
    order(alice_api, alice_portfolio, "buy", "3", coin="ethereum")
    order(alice_api, alice_portfolio, "sell", "1")
    assert alice_api.get("/api/v1/trades/").json()["count"] == 3
    assert alice_api.get("/api/v1/trades/?coin=ethereum").json()["count"] == 1
    assert alice_api.get("/api/v1/trades/?side=sell").json()["count"] == 1
    assert alice_api.get("/api/v1/trades/?executed_after=2000-01-01T00:00:00Z").json()["count"] == 3
    assert alice_api.get("/api/v1/trades/?executed_before=2000-01-01T00:00:00Z").json()["count"] == 0
    response = alice_api.get("/api/v1/trades/?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().strip().splitlines()
    assert lines[0] == "executed_at,portfolio,coin,side,quantity,price,notional,fee,realized_pnl,order"
    assert len(lines) == 4
    assert ",bitcoin,buy,2,100,200,0.2,," in lines[1]
