"""Order pricing without the ORM: notional, fee, cost, proceeds, reservation and limit fill price.

Rounding policy (CONVENTIONS): a buy's notional and every fee round up (the desk never undercharges), a
sell's notional rounds down; everything is computed in the 80-digit money context and quantized to 18 places.
"""

from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.conf import settings

from cryptodesk.money import CONTEXT, MAX_AMOUNT, ROUND_DOWN, ROUND_UP, mul

BPS = Decimal(10_000)
BUY = "buy"
SELL = "sell"


@dataclass(frozen=True)
class Priced:
    """One side of a fill: `total` is a buy's cost (fee included) or a sell's proceeds (fee deducted)."""

    notional: Decimal
    fee: Decimal
    total: Decimal


def _fee_bps(fee_bps: int | Decimal | None) -> Decimal:
    return Decimal(settings.PAPER_FEE_BPS if fee_bps is None else fee_bps)


def fee(notional: Decimal, *, fee_bps: int | Decimal | None = None) -> Decimal:
    """`fee_bps` (default PAPER_FEE_BPS) basis points of the notional, rounded up."""
    with localcontext(CONTEXT):
        rate = _fee_bps(fee_bps) / BPS
    return mul(notional, rate, rounding=ROUND_UP)


def notional(*, side: str, quantity: Decimal, price: Decimal) -> Decimal:
    """quantity × price: rounded up for a buy, down for a sell."""
    return mul(quantity, price, rounding=ROUND_UP if side == BUY else ROUND_DOWN)


def buy_cost(*, quantity: Decimal, price: Decimal, fee_bps: int | Decimal | None = None) -> Priced:
    value = notional(side=BUY, quantity=quantity, price=price)
    charge = fee(value, fee_bps=fee_bps)
    with localcontext(CONTEXT):
        return Priced(notional=value, fee=charge, total=value + charge)


def sell_proceeds(*, quantity: Decimal, price: Decimal, fee_bps: int | Decimal | None = None) -> Priced:
    value = notional(side=SELL, quantity=quantity, price=price)
    charge = fee(value, fee_bps=fee_bps)
    with localcontext(CONTEXT):
        return Priced(notional=value, fee=charge, total=value - charge)


def price_order(*, side: str, quantity: Decimal, price: Decimal, fee_bps: int | Decimal | None = None) -> Priced:
    if side == BUY:
        return buy_cost(quantity=quantity, price=price, fee_bps=fee_bps)
    return sell_proceeds(quantity=quantity, price=price, fee_bps=fee_bps)


def max_buy_quantity(
    *, cash: Decimal, price: Decimal, fee_bps: int | Decimal | None = None, places: int = 8
) -> Decimal:
    """The largest quantity at `places` decimals, up to cash / (price × (1 + fee)), whose `buy_cost` (notional and
    fee rounded up at 18 places) fits in cash."""
    if price <= 0:
        raise ValueError("A buy needs a positive price.")
    if cash <= 0:
        return Decimal(0)
    step = Decimal(1).scaleb(-places)
    with localcontext(CONTEXT):
        rate = _fee_bps(fee_bps) / BPS
        high = (cash / (price * (1 + rate))).quantize(step, rounding=ROUND_DOWN)

        def fits_cash(steps: int) -> bool:
            return buy_cost(quantity=step * steps, price=price, fee_bps=fee_bps).total <= cash

        # the exact quotient, unless rounding notional and fee up at 18 places pushes it over: then the
        # largest fitting count of steps below it, bracketed by doubling and found by bisection
        top = int(high / step)
        if top <= 0 or fits_cash(top):
            return max(high, Decimal(0))
        jump = 1
        while top - jump > 0 and not fits_cash(top - jump):
            jump *= 2
        low, upper = max(top - jump, 0), top - jump // 2 - 1  # low fits (0 always does), upper + 1 does not
        while low < upper:
            middle = (low + upper + 1) // 2
            low, upper = (middle, upper) if fits_cash(middle) else (low, middle - 1)
        return step * low


def reservation(*, side: str, quantity: Decimal, limit_price: Decimal, fee_bps: int | Decimal | None = None) -> Decimal:
    """What an open limit order holds: a buy's cost at its limit (cash), a sell's quantity (coins)."""
    if side == BUY:
        return buy_cost(quantity=quantity, price=limit_price, fee_bps=fee_bps).total
    return quantity


def is_crossed(*, side: str, limit_price: Decimal, market_price: Decimal) -> bool:
    """The market is at or through the limit: a buy at or below it, a sell at or above it."""
    return market_price <= limit_price if side == BUY else market_price >= limit_price


def limit_fill_price(*, side: str, limit_price: Decimal, market_price: Decimal) -> Decimal:
    """A crossed limit order fills at the better of its limit and the market."""
    return min(limit_price, market_price) if side == BUY else max(limit_price, market_price)


def fits(value: Decimal) -> bool:
    """The value can be stored in an AMOUNT column (38 digits, 18 places)."""
    return abs(value) < MAX_AMOUNT


# --- protective orders ------------------------------------------------------------------------------

HUNDRED = Decimal(100)
TAKE_PROFIT = "take_profit"


def is_triggered(*, type: str, side: str, stop_price: Decimal, market_price: Decimal) -> bool:
    """A take-profit sells once the price rises to its trigger; a sell stop once it falls to it; a buy stop once it
    rises to it (stop, stop limit and trailing stop alike)."""
    if type == TAKE_PROFIT or side == BUY:
        return market_price >= stop_price
    return market_price <= stop_price


def trail_peak(*, side: str, peak: Decimal, market_price: Decimal) -> Decimal:
    """The best price seen: it only ever moves in the order's favour (up for a sell, down for a buy)."""
    return max(peak, market_price) if side == SELL else min(peak, market_price)


def trail_stop(
    *, side: str, peak: Decimal, trail_percent: Decimal | None = None, trail_amount: Decimal | None = None
) -> Decimal:
    """Where a trailing stop stands: `trail_percent` % or `trail_amount` below the peak (a sell), above it (a buy)."""
    sign = -1 if side == SELL else 1
    with localcontext(CONTEXT):
        distance = peak * trail_percent / HUNDRED if trail_percent is not None else trail_amount
        return (peak + sign * distance).quantize(Decimal(1).scaleb(-18))
