"""Money under concurrency (PostgreSQL): one order per key, no oversold coin, no overspent cash."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from conftest import needs_concurrent_db, run_concurrently
from portfolios import services
from portfolios.models import Holding, Order, Portfolio

pytestmark = [needs_concurrent_db, pytest.mark.django_db(transaction=True)]


def market_order(user, portfolio, side: str, quantity: str) -> int:
    """Place a market order for bitcoin through the service: 201 if it filled, 400 if it was refused."""
    try:
        services.place_order(
            user=user,
            portfolio_id=portfolio.pk,
            coin_id="bitcoin",
            side=side,
            type="market",
            quantity=Decimal(quantity),
        )
    except services.OrderRefused:
        return 400
    return 201


def _client(user_api) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=user_api._credentials["HTTP_AUTHORIZATION"])
    return client


def test_thirty_requests_with_one_key_make_one_order(alice_api, alice_portfolio):
    body = {"portfolio": alice_portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1"}

    def request(index: int) -> int:
        return _client(alice_api).post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="once").status_code

    statuses = run_concurrently(30, request)
    assert statuses.count(201) == 1
    assert statuses.count(200) == 29
    assert Order.objects.count() == 1
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal("9899.9")


def test_twenty_concurrent_sells_of_half_the_position_fill_at_most_twice(alice, alice_portfolio):
    services.place_order(
        user=alice,
        portfolio_id=alice_portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="market",
        quantity=Decimal("10"),
    )

    def request(index: int) -> int:
        return market_order(alice, alice_portfolio, "sell", "5")

    statuses = run_concurrently(20, request)
    assert statuses.count(201) == 2
    assert statuses.count(400) == 18
    assert Holding.objects.get(portfolio=alice_portfolio).quantity == Decimal("0")


def test_twenty_concurrent_buys_of_sixty_percent_of_cash_fill_at_most_once(alice, alice_portfolio):
    def request(index: int) -> int:
        return market_order(alice, alice_portfolio, "buy", "60")

    statuses = run_concurrently(20, request)
    assert statuses.count(201) == 1
    portfolio = Portfolio.objects.get(pk=alice_portfolio.pk)
    assert portfolio.cash == Decimal("3994")  # 10000 - 6000 - 6 fee
    assert portfolio.cash >= 0


def test_cancel_racing_a_fill_settles_once(alice, alice_portfolio):
    from .conftest import set_price

    placed, _ = services.place_order(
        user=alice,
        portfolio_id=alice_portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal("1"),
        limit_price=Decimal("90"),
    )
    set_price("bitcoin", "80")
    outcomes: list[str] = []

    def request(index: int) -> int:
        try:
            if index == 0:
                services.cancel_order(user=alice, order_id=placed.pk)
                outcomes.append("cancelled")
            else:
                outcomes.append("filled" if services.fill_limit_orders() else "none")
        except Exception as exc:  # the loser of the race is told why
            outcomes.append(exc.__class__.__name__)
        return 0

    run_concurrently(2, request)
    assert sorted(outcomes) in (["Conflict", "filled"], ["cancelled", "none"])  # exactly one of them won
    order = Order.objects.get(pk=placed.pk)
    portfolio = Portfolio.objects.get(pk=alice_portfolio.pk)
    assert order.status in {"filled", "cancelled"}
    assert portfolio.reserved_cash == Decimal("0")
    if order.status == "filled":
        assert portfolio.cash == Decimal("9919.92")  # 10000 - 80 - 0.08
    else:
        assert portfolio.cash == Decimal("10000")


def test_concurrent_creates_of_one_portfolio_name_make_one(alice_api, alice):
    def request(index: int) -> tuple[int, list[str]]:
        response = _client(alice_api).post(
            "/api/v1/portfolios/", {"name": "Twin", "starting_cash": "100"}, format="json"
        )
        return response.status_code, list(response.json().get("errors", {}))

    results = run_concurrently(8, request)
    assert sorted(status for status, _ in results) == [201] + [400] * 7
    assert all(fields == ["name"] for status, fields in results if status == 400)
    assert Portfolio.objects.filter(owner=alice, name="Twin").count() == 1
