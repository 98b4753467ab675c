"""Portfolio fixtures: a priced coin and funded portfolios for alice and bob."""

from decimal import Decimal

import pytest
from django.utils import timezone

from market.models import Coin, Quote
from portfolios import services


def set_price(coin_id: str, price: str, *, change: str | None = None, updated=None) -> Quote:
    coin, _ = Coin.objects.get_or_create(id=coin_id, defaults={"symbol": coin_id[:3], "name": coin_id.title()})
    quote, _ = Quote.objects.update_or_create(
        coin=coin,
        defaults={
            "current_price": Decimal(price),
            "price_change_percentage_24h": Decimal(change) if change is not None else None,
            "last_updated": updated or timezone.now(),
        },
    )
    return quote


@pytest.fixture
def btc(db) -> Quote:
    return set_price("bitcoin", "100")


@pytest.fixture
def alice_portfolio(alice, btc):
    return services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal("10000"))


@pytest.fixture
def bob_portfolio(bob, btc):
    return services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("5000"))


def order(
    client,
    portfolio,
    side: str,
    quantity: str,
    *,
    type: str = "market",
    limit_price=None,
    coin="bitcoin",
    stop_price=None,
    **headers,
):
    body = {"portfolio": portfolio.pk, "coin": coin, "side": side, "type": type, "quantity": quantity}
    for name, value in (("limit_price", limit_price), ("stop_price", stop_price)):
        if value is not None:
            body[name] = value
    return client.post("/api/v1/orders/", body, format="json", **headers)
