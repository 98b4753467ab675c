"""Number formatting for every page: money, quantities, percentages, signs; exact, in the money context."""

import functools
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from cryptodesk.money import CONTEXT, as_str

register = template.Library()

CENT = Decimal("0.01")
MINUS = "\u2212"  # a real minus sign: lines up with the plus in tabular figures


def _in_context(function):
    """Run a filter in the money context (80 digits): huge amounts format instead of raising."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with localcontext(CONTEXT):
            return function(*args, **kwargs)

    return wrapper


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _grouped(number: Decimal, *, places: int | None) -> str:
    """1,234.56 from a non-negative Decimal; places=None keeps every significant decimal (at least two)."""
    if places is not None:
        return f"{number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):,.{places}f}"
    text = as_str(number)
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(2, "0")
    return f"{int(whole):,}.{fraction}"


@register.filter
@_in_context
def money(value, places: int = 2) -> str:
    """$1,234.56 and −$12.30: amounts of US dollars, rounded half-even to cents."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = "$" + _grouped(abs(number), places=int(places))
    return MINUS + text if number.quantize(Decimal(1).scaleb(-int(places))) < 0 else text


@register.filter
@_in_context
def signed_money(value) -> str:
    """+$12.30 / −$12.30 / $0.00: a change or a profit."""
    number = _decimal(value)
    if number is None:
        return "—"
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        return "$0.00"
    return ("+" if rounded > 0 else MINUS) + "$" + _grouped(abs(rounded), places=2)


@register.filter
@_in_context
def exact_money(value) -> str:
    """Every significant digit, at least cents: $0.20, $200.20, $0.000123 (fees and costs before an order)."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = "$" + _grouped(abs(number), places=None)
    return MINUS + text if number < 0 else text


@register.filter
@_in_context
def qty(value) -> str:
    """A quantity as stored, without trailing zeros: 1,234.5, 0.00012345."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = as_str(abs(number))
    whole, dot, fraction = text.partition(".")
    grouped = f"{int(whole):,}" + (dot + fraction if fraction else "")
    return MINUS + grouped if number < 0 else grouped


@register.filter
@_in_context
def share(value, places: int = 1) -> str:
    """A share that is already a percentage: 42.5%."""
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_EVEN):,.{int(places)}f}%"


@register.filter
@_in_context
def signed_share(value) -> str:
    """A percentage change: +1.23% / −4.50%."""
    number = _decimal(value)
    if number is None:
        return "—"
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        return "0.00%"
    return ("+" if rounded > 0 else MINUS) + f"{abs(rounded):,.2f}%"


@register.filter
@_in_context
def fraction_pct(value, places: int = 2) -> str:
    """A fraction as a percentage: 0.1234 → 12.34%."""
    number = _decimal(value)
    if number is None:
        return "—"
    return share(number * 100, places)


@register.filter
@_in_context
def tone(value) -> str:
    """The CSS class for a signed number: up, down, or nothing for zero."""
    number = _decimal(value)
    if number is None or number.quantize(CENT) == 0:
        return ""
    return "up" if number > 0 else "down"


@register.filter
@_in_context
def ago(value) -> str:
    """How long ago, roughly: "just now", "3 minutes ago", "2 days ago"."""
    if value is None:
        return "—"
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.filter
@_in_context
def plain(value) -> str:
    """The exact value for a data attribute: 0.2, 200 (no exponent, no trailing zeros)."""
    number = _decimal(value)
    return "" if number is None else as_str(number)
