"""Pricing without the ORM: the largest affordable buy is priced by the same rules as the fill."""

from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
from django.conf import settings
from django.test import override_settings

from cryptodesk.money import CONTEXT
from portfolios import pricing

STEP = Decimal("0.00000001")


@pytest.mark.parametrize(
    ("cash", "price", "fee_bps"),
    [
        (Decimal("10000"), Decimal("12"), None),
        (Decimal("10000"), Decimal("3"), 10),
        (Decimal("0.000000000000000007"), Decimal("0.000000000000000001"), 10),
        (Decimal("1"), Decimal("0.000000000123456789"), 25),
        (Decimal("99999999.999999999999999999"), Decimal("86123.456789012345678901"), 10),
        (Decimal("100"), Decimal("33.333333333333333333"), 0),
        (Decimal("5"), Decimal("7"), 10),
    ],
)
def test_max_buy_quantity_is_the_largest_that_fits_with_its_fee(cash, price, fee_bps):
    quantity = pricing.max_buy_quantity(cash=cash, price=price, fee_bps=fee_bps)
    assert quantity >= 0
    assert quantity == quantity.quantize(STEP)
    if quantity:
        assert pricing.buy_cost(quantity=quantity, price=price, fee_bps=fee_bps).total <= cash
    rate = Decimal(settings.PAPER_FEE_BPS if fee_bps is None else fee_bps) / 10_000
    with localcontext(CONTEXT):
        beyond_quotient = (quantity + STEP) * price * (1 + rate) > cash
    assert beyond_quotient or pricing.buy_cost(quantity=quantity + STEP, price=price, fee_bps=fee_bps).total > cash


def test_max_buy_quantity_steps_below_a_quotient_that_rounding_pushes_over_cash():
    # at 8 places the exact quotient is 255124.04311083, but rounding its notional and fee up at 18 places
    # costs more than the cash: the largest that fits is six steps below it
    cash, price = Decimal("0.00000434556"), Decimal("1.701611E-11")
    with localcontext(CONTEXT):
        quotient = (cash / (price * Decimal("1.001"))).quantize(STEP, rounding=ROUND_DOWN)
    assert pricing.buy_cost(quantity=quotient, price=price, fee_bps=10).total > cash
    quantity = pricing.max_buy_quantity(cash=cash, price=price, fee_bps=10)
    assert quantity == Decimal("255124.04311079")
    assert pricing.buy_cost(quantity=quantity, price=price, fee_bps=10).total <= cash
    assert pricing.buy_cost(quantity=quantity + STEP, price=price, fee_bps=10).total > cash


def test_max_buy_quantity_places_and_default_fee():
    with override_settings(PAPER_FEE_BPS=100):
        assert pricing.max_buy_quantity(cash=Decimal("101"), price=Decimal("10"), places=0) == Decimal("10")
        assert pricing.max_buy_quantity(cash=Decimal("100.99"), price=Decimal("10"), places=0) == Decimal("9")


@pytest.mark.parametrize("cash", [Decimal("0"), Decimal("-5")])
def test_max_buy_quantity_without_cash_is_zero(cash):
    assert pricing.max_buy_quantity(cash=cash, price=Decimal("10")) == 0


def test_max_buy_quantity_needs_a_positive_price():
    with pytest.raises(ValueError, match="price"):
        pricing.max_buy_quantity(cash=Decimal("10"), price=Decimal("0"))
