"""Exact decimal fields for the API: strings out, no trailing zeros; more places than stored in → 400."""

from rest_framework import serializers

from cryptodesk.money import AMOUNT, PERCENT, NumberRejected, parse_bounded_decimal


class BoundedDecimalField(serializers.DecimalField):
    """DRF's DecimalField, but the input is size-checked before any conversion: plain ASCII numbers only."""

    def to_internal_value(self, data):
        try:
            value = parse_bounded_decimal(data)
        except NumberRejected as exc:
            if exc.code != "too_large":
                self.fail("invalid")
            raise serializers.ValidationError(str(exc), code=exc.code) from None
        return self.quantize(self.validate_precision(value))


class AmountField(BoundedDecimalField):
    """Money or a quantity: (38, 18), leaves as a JSON string such as "0.12345678"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", AMOUNT["max_digits"])
        kwargs.setdefault("decimal_places", AMOUNT["decimal_places"])
        kwargs.setdefault("normalize_output", True)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        from decimal import localcontext

        from cryptodesk.money import CONTEXT

        with localcontext(CONTEXT):  # DRF's normalize() would round to the default 28 digits
            text = super().to_representation(value)
        return _plain(text) if isinstance(text, str) else text


class PercentField(AmountField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", PERCENT["max_digits"])
        kwargs.setdefault("decimal_places", PERCENT["decimal_places"])
        super().__init__(**kwargs)


def _plain(text: str) -> str:
    """normalize() may write 1E+5: spell it out."""
    if "E" in text or "e" in text:
        from decimal import Decimal

        from cryptodesk.money import as_str

        return as_str(Decimal(text))
    return text
