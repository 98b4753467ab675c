"""Exact decimals for money and quantities: field size, an 80-digit context, rounding at the edges only."""

from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

AMOUNT = {"max_digits": 38, "decimal_places": 18}  # DecimalField(**AMOUNT) for prices, quantities, values
PERCENT = {"max_digits": 24, "decimal_places": 8}  # percentage changes (e.g. 24 h change)
PLACES = 18
CONTEXT = Context(prec=80, traps=[InvalidOperation, DivisionByZero, Overflow])

__all__ = ["AMOUNT", "CONTEXT", "PERCENT", "ROUND_DOWN", "ROUND_HALF_EVEN", "ROUND_UP", "mul", "quantize", "to_decimal"]


def quantize(value: Decimal, *, places: int = PLACES, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    with localcontext(CONTEXT):
        return value.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def mul(a: Decimal, b: Decimal, *, places: int = PLACES, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    with localcontext(CONTEXT):
        return (a * b).quantize(Decimal(1).scaleb(-places), rounding=rounding)


def to_decimal(value: object, *, places: int = PLACES) -> Decimal:
    """An exact Decimal from a JSON number (already Decimal), int or string; never from a float."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"refusing {type(value).__name__}: money never passes through a float")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise TypeError(f"{type(value).__name__} is not a number")
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return quantize(number, places=places)


def as_str(value: Decimal) -> str:
    """The exact value as a plain decimal string: no exponent, no trailing zeros ("86000", "0.00001234")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
