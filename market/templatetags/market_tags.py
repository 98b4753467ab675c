"""Display helpers for market numbers: readable prices, compact money, sparklines as SVG points."""

from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings

register = template.Library()

_UNITS = [(Decimal(10) ** 12, "T"), (Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "K")]


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@register.filter
def price(value) -> str:
    """$64,123.45 for big prices, $0.00001234 for tiny ones: always enough digits to see a move."""
    number = _decimal(value)
    if number is None:
        return "—"
    if number >= 1:
        return f"${number:,.2f}"
    if number == 0:
        return "$0.00"
    digits = max(2, -number.adjusted() + 3)
    return f"${number:.{min(digits, 12)}f}"


@register.filter
def compact(value) -> str:
    number = _decimal(value)
    if number is None:
        return "—"
    for size, suffix in _UNITS:
        if abs(number) >= size:
            return f"${number / size:,.2f}{suffix}"
    return f"${number:,.2f}"


@register.filter
def percent(value) -> str:
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number:+.2f}%"


@register.filter
def direction(value) -> str:
    number = _decimal(value)
    if number is None or number == 0:
        return ""
    return "up" if number > 0 else "down"


@register.simple_tag
def sparkline_points(values, width: int = 120, height: int = 32) -> str:
    """SVG polyline points for a list of decimal strings (no script: drawn by the server)."""
    numbers = [n for n in (_decimal(v) for v in values or []) if n is not None]
    if len(numbers) < 2:
        return ""
    low, high = min(numbers), max(numbers)
    span = (high - low) or Decimal(1)
    step = Decimal(width) / (len(numbers) - 1)
    pad = Decimal(2)
    usable = Decimal(height) - 2 * pad
    return " ".join(
        f"{(step * i).quantize(Decimal('0.1'))},{(pad + usable - (n - low) / span * usable).quantize(Decimal('0.1'))}"
        for i, n in enumerate(numbers)
    )


@register.filter
def trend(values) -> str:
    numbers = [n for n in (_decimal(v) for v in values or []) if n is not None]
    if len(numbers) < 2 or numbers[-1] == numbers[0]:
        return ""
    return "up" if numbers[-1] > numbers[0] else "down"


@register.simple_tag
def stale_market_orders_fill() -> bool:
    """Whether a market order on a stale price fills (the demo) or is refused: the setting the order service reads."""
    return settings.PAPER_ALLOW_STALE_PRICES
