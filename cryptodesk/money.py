"""Exact decimals for money and quantities: field size, an 80-digit context, rounding at the edges only."""

import re
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
MAX_AMOUNT = Decimal(10) ** (AMOUNT["max_digits"] - AMOUNT["decimal_places"])  # every AMOUNT value is below it
CONTEXT = Context(prec=80, traps=[InvalidOperation, DivisionByZero, Overflow])

MAX_NUMBER_CHARS = 100  # longer than any (38, 18) amount written out, far below what pins a CPU
MAX_NUMBER_EXPONENT = 100  # |adjusted exponent| of an accepted number
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

__all__ = [
    "AMOUNT",
    "CONTEXT",
    "MAX_AMOUNT",
    "MAX_NUMBER_CHARS",
    "MAX_NUMBER_EXPONENT",
    "PERCENT",
    "ROUND_DOWN",
    "ROUND_HALF_EVEN",
    "ROUND_UP",
    "mul",
    "parse_bounded_decimal",
    "quantize",
    "to_decimal",
]


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


class NumberRejected(ValueError):
    """Input that is not a plain, finite, reasonably sized number; the message is meant for a person.

    `code` is "invalid" (not a plain number at all) or "too_large" (a number, but too long or too big).
    """

    def __init__(self, message: str, *, code: str = "invalid"):
        super().__init__(message)
        self.code = code


def parse_bounded_decimal(value: object) -> Decimal:
    """A finite Decimal from a plain ASCII number (str), an int or a Decimal, bounded before any conversion.

    Refused with NumberRejected: bools, floats, anything else that is not a number; text longer than
    MAX_NUMBER_CHARS, with spaces, non-ASCII digits, NaN or Infinity; numbers whose digits or exponent go
    beyond MAX_NUMBER_CHARS / MAX_NUMBER_EXPONENT (checked on the text or the digit tuple, never by
    building the value).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise NumberRejected("A number is required.")
    if isinstance(value, int):
        if value.bit_length() > MAX_NUMBER_CHARS * 10 // 3:  # ≈ bits of MAX_NUMBER_CHARS decimal digits
            raise NumberRejected("This number is too large.", code="too_large")
        return Decimal(value)
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise NumberRejected(f"A number has at most {MAX_NUMBER_CHARS} characters.", code="too_large")
        if not _PLAIN_NUMBER.fullmatch(value):
            raise NumberRejected("A valid number is required: ASCII digits, an optional sign, point and exponent.")
        exponent = value.lower().partition("e")[2]
        if exponent and len(exponent.lstrip("+-").lstrip("0")) > len(str(MAX_NUMBER_EXPONENT)):
            raise NumberRejected("This number's exponent is too large.", code="too_large")
        value = Decimal(value)
    if not value.is_finite():
        raise NumberRejected("A finite number is required.")
    digits = value.as_tuple().digits
    if len(digits) > MAX_NUMBER_CHARS:
        raise NumberRejected("This number has too many digits.", code="too_large")
    if value and abs(value.adjusted()) > MAX_NUMBER_EXPONENT:
        raise NumberRejected("This number is too large or too small.", code="too_large")
    return value
