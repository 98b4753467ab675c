"""Browser forms and services: bounded number inputs, a service's refusal shown beside the field it concerns."""

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError as FormValidationError
from rest_framework.exceptions import ValidationError

from .errors import DomainError, FieldErrors
from .money import NumberRejected, parse_bounded_decimal


class BoundedDecimalField(forms.DecimalField):
    """A decimal input checked for size before any conversion (see `parse_bounded_decimal`).

    Spaces around what a person typed are forgiven; anything but plain ASCII digits, sign, point and
    exponent is an error beside the field.
    """

    def to_python(self, value) -> Decimal | None:
        if value in self.empty_values:
            return None
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
        try:
            return parse_bounded_decimal(value)
        except NumberRejected as exc:
            message = str(exc) if exc.code == "too_large" else self.error_messages["invalid"]
            raise FormValidationError(message, code=exc.code) from None


def add_service_errors(form: forms.BaseForm, exc: ValidationError | DomainError) -> None:
    """Put a DomainError or a DRF ValidationError ({field: [messages]}) on the form, field by field.

    A field the form does not have ("params.fast" is one when the form names its inputs so) becomes a
    form-wide error, so nothing a service says is ever dropped.
    """
    if isinstance(exc, FieldErrors):
        for name, messages in exc.errors.items():
            for message in messages:
                form.add_error(name if name in form.fields else None, message)
        return
    if isinstance(exc, DomainError):
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return
    detail = exc.detail if isinstance(exc.detail, dict) else {None: exc.detail}
    for name, errors in detail.items():
        for error in errors if isinstance(errors, list) else [errors]:
            form.add_error(name if name in form.fields else None, str(error))


class BoundedIntegerField(forms.IntegerField):
    """A whole-number input with the same size checks as `BoundedDecimalField` ("12", "1e3"; not "1.5")."""

    def to_python(self, value) -> int | None:
        number = BoundedDecimalField.to_python(self, value)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise FormValidationError(self.error_messages["invalid"], code="invalid")
        return int(number)


def amount_field(*, label: str, min_value: Decimal | None, max_value: Decimal, **kwargs) -> forms.DecimalField:
    """A money or quantity input: at most 18 decimal places (what the database stores), typed as text."""
    from .money import AMOUNT

    return BoundedDecimalField(
        label=label,
        max_digits=AMOUNT["max_digits"],
        decimal_places=AMOUNT["decimal_places"],
        min_value=min_value,
        max_value=max_value,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"}),
        **kwargs,
    )


class CoinChoiceField(forms.ModelChoiceField):
    """Coins that have a price, in market-cap order: "Bitcoin · BTC"."""

    def __init__(self, **kwargs):
        from market import selectors as market_selectors

        kwargs.setdefault("empty_label", None)
        super().__init__(queryset=market_selectors.coin_rows(), **kwargs)

    def label_from_instance(self, coin) -> str:
        return f"{coin.name} · {coin.symbol.upper()}"
