"""Every stored digit survives on both databases: the embedded SQLite is as exact as PostgreSQL."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from market.models import Quote
from portfolios import services
from portfolios.models import Holding, Order, Portfolio
from portfolios.tests.conftest import set_price

pytestmark = pytest.mark.django_db

FINE = Decimal("0.123456789012345678")  # 18 places: more than a float (and stock SQLite) keeps


def test_sell_all_of_an_18_place_quantity_leaves_no_dust(alice):
    set_price("bitcoin", "3.000000000000000001")
    portfolio = services.create_portfolio(owner=alice, name="Exact", starting_cash=Decimal("1000"))
    services.place_order(
        user=alice, portfolio_id=portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=FINE
    )
    holding = Holding.objects.get(portfolio=portfolio, coin_id="bitcoin")
    assert holding.quantity == FINE
    assert Quote.objects.get(coin_id="bitcoin").current_price == Decimal("3.000000000000000001")

    services.place_order(
        user=alice, portfolio_id=portfolio.pk, coin_id="bitcoin", side="sell", type="market", quantity=holding.quantity
    )
    holding.refresh_from_db()
    assert holding.quantity == 0
    assert holding.average_cost == 0  # the position closed, so the cost basis resets


def test_comparisons_and_ordering_are_numeric(alice):
    set_price("bitcoin", "100")
    portfolio = services.create_portfolio(owner=alice, name="Book", starting_cash=Decimal("100000"))
    for limit in ["9", "10.5", "100", "0.000000000000000001", "2"]:
        services.place_order(
            user=alice,
            portfolio_id=portfolio.pk,
            coin_id="bitcoin",
            side="buy",
            type="limit",
            quantity=Decimal("1"),
            limit_price=Decimal(limit),
        )
    ordered = list(Order.objects.order_by("limit_price").values_list("limit_price", flat=True))
    assert ordered == sorted(ordered)
    assert ordered[0] == Decimal("0.000000000000000001")
    assert set(Order.objects.filter(limit_price__gte=Decimal("9.5")).values_list("limit_price", flat=True)) == {
        Decimal("10.5"),
        Decimal("100"),
    }
    assert Order.objects.filter(limit_price__lt=10).count() == 3


def test_balance_constraints_still_refuse_negatives(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="C", starting_cash=0, cash=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=Decimal("-0.000000000000000001"))


def test_the_stored_column_holds_every_digit(alice):
    portfolio = Portfolio.objects.create(owner=alice, name="T", starting_cash=FINE, cash=FINE)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # exact text, not a REAL rounded to 15 digits
            cursor.execute("SELECT typeof(cash), cash FROM portfolios_portfolio WHERE id = %s", [portfolio.pk])
            assert cursor.fetchone() == ("text", "0.123456789012345678")
        else:
            cursor.execute("SELECT cash::text FROM portfolios_portfolio WHERE id = %s", [portfolio.pk])
            assert cursor.fetchone() == ("0.123456789012345678",)
