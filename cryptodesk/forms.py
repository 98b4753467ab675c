"""Browser forms and services: bounded number inputs, a service's refusal shown beside the field it concerns."""

import re
import string
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial

from django import forms
from django.core.cache import cache
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as FormValidationError
from django.db import transaction
from rest_framework.exceptions import ValidationError

from .errors import DomainError, FieldErrors
from .money import MAX_NUMBER_CHARS, NumberRejected, parse_bounded_decimal
from .templatetags.numbers import money, qty


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


GROUPED = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
GROUPING_MESSAGE = "Use commas only between groups of three digits (10,000.50); the decimal separator is a point."
MINUS_SIGN = "\u2212"  # what the pages print before a negative number


class PageDecimalField(BoundedDecimalField):
    """A number typed into a page, written as the pages print it: "10,000.50", "$10,000.00", "−5", "5 %".

    Grouping commas must group thousands ("1,00" and "1.000,5" are refused with a message rather than
    guessed at); `prefix` ("$") or `suffix` ("%") is the unit the field may carry. What is left is checked by
    `parse_bounded_decimal`, as the API checks its numbers (which stay strict: this field is for pages only).
    """

    def __init__(self, *, prefix: str = "", suffix: str = "", **kwargs):
        self.prefix, self.suffix = prefix, suffix
        super().__init__(**kwargs)

    def to_python(self, value) -> Decimal | None:
        if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS * 2:  # longer: refused as too long below
            value = self._plain(value)
        return super().to_python(value)

    def _plain(self, text: str) -> str:
        text = text.strip().replace(MINUS_SIGN, "-")
        sign = text[:1] if text[:1] in ("+", "-") else ""
        text = text[len(sign) :].strip()
        if self.prefix and text.startswith(self.prefix):
            text = text[len(self.prefix) :].strip()
            if not sign and text[:1] in ("+", "-"):  # "$-5" as well as "-$5"
                sign, text = text[:1], text[1:]
        if self.suffix and text.endswith(self.suffix):
            text = text[: -len(self.suffix)].strip()
        if "," in text:
            if not GROUPED.fullmatch(text):
                raise FormValidationError(GROUPING_MESSAGE, code="grouping")
            text = text.replace(",", "")
        return sign + text


class _PageNumbers(string.Formatter):
    """A domain error's numbers as the pages print them: {needed:money} → $100,100.00, {held:qty} → 1,000."""

    FORMATS = {"money": money, "qty": qty}

    def format_field(self, value, format_spec: str) -> str:
        if format_spec in self.FORMATS:
            return self.FORMATS[format_spec](value)
        return super().format_field(value, format_spec)


def page_message(exc: DomainError) -> str:
    """What a page says for a domain error: its numbers formatted like the rest of the page."""
    if exc.template is None:
        return exc.detail
    return _PageNumbers().format(exc.template, **exc.values)


def add_service_errors(
    form: forms.BaseForm, exc: ValidationError | DomainError, *, fields: dict[str, str] | None = None
) -> None:
    """Put a DomainError or a DRF ValidationError ({field: [messages]}) on the form, field by field, once.

    `fields` renames a service's field to the form's input ({"threshold": "price"}). A field the form does not
    have becomes a form-wide error, so nothing a service says is dropped, but a message already shown beside a
    field is not repeated in the summary.
    """
    fields = fields or {}

    def add(name: str | None, message: str) -> None:
        name = fields.get(name, name)
        target = name if name in form.fields else None
        shown = form.errors.get(target or NON_FIELD_ERRORS, [])
        if message in shown or (target is None and any(message in errors for errors in form.errors.values())):
            return
        form.add_error(target, message)

    if isinstance(exc, FieldErrors):
        for name, messages in exc.errors.items():
            for message in messages:
                add(name, message)
        return
    if isinstance(exc, DomainError):
        add(exc.field, page_message(exc))
        return
    detail = exc.detail if isinstance(exc.detail, dict) else {None: exc.detail}
    for name, errors in detail.items():
        for error in errors if isinstance(errors, list) else [errors]:
            add(name, str(error))


class BoundedIntegerField(forms.IntegerField):
    """A whole-number input with the same size checks as `BoundedDecimalField` ("12", "1e3"; not "1.5")."""

    def to_python(self, value) -> int | None:
        number = BoundedDecimalField.to_python(self, value)
        if number is None:
            return None
        if number != number.to_integral_value():
            raise FormValidationError(self.error_messages["invalid"], code="invalid")
        return int(number)


def amount_field(
    *, label: str, min_value: Decimal | None, max_value: Decimal | None, currency: bool = True, **kwargs
) -> forms.DecimalField:
    """A money or quantity input: at most 18 decimal places (what the database stores), typed as text.

    It takes what the pages print: grouping commas, and a leading "$" unless `currency` is False (quantities).
    """
    from .money import AMOUNT

    kwargs.setdefault("prefix", "$" if currency else "")
    kwargs.setdefault("decimal_places", AMOUNT["decimal_places"])
    return PageDecimalField(
        label=label,
        max_digits=AMOUNT["max_digits"],
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


# --- one submission per form -----------------------------------------------------------------------

SUBMISSION_TOKEN = re.compile(r"[0-9a-f]{32}")
SUBMISSION_TTL_S = 6 * 3600  # a page left open this long gets a fresh token on its next load anyway
SUBMISSION_WAIT_S = 10  # how long a twin waits for the first submission to finish
SUBMISSION_PENDING_TTL_S = 120  # a claim whose process died frees its token after this
_PENDING = "pending"


def _publish(key: str, made: list[str]) -> None:
    cache.set(key, made[0], timeout=SUBMISSION_TTL_S)


def submit_once(*, user_id: int, scope: str, token: str, create: Callable[[], str]) -> tuple[str, bool]:
    """Run `create` once per form token: (its result, True), or a twin's (the first one's result, False).

    The token is a hidden field rendered with the form: a double click or a resent POST carries the same one,
    and only one of them gets to `create` (a claim in the shared cache, atomic across processes). A twin waits
    for the first to finish; if the first failed (its form shows why), the twin tries in its place. A missing
    or malformed token (a page from before tokens) runs `create` as is.
    """
    if not SUBMISSION_TOKEN.fullmatch(token or ""):
        return create(), True
    key = f"submission:{scope}:{user_id}:{token}"
    deadline = time.monotonic() + SUBMISSION_WAIT_S
    while True:
        if cache.add(key, _PENDING, timeout=SUBMISSION_PENDING_TTL_S):
            made: list[str] = []
            try:
                with transaction.atomic():
                    # registered first, so it runs on commit before anything `create` queued (a task run in
                    # process, say): the twin can go to the committed result at once
                    transaction.on_commit(partial(_publish, key, made), robust=True)
                    made.append(create())
            except BaseException:
                cache.delete(key)  # nothing was made: the same form may be sent again
                raise
            _publish(key, made)  # again, in case an outer transaction holds the commit (and its callbacks) back
            return made[0], True
        existing = cache.get(key)
        while existing == _PENDING and time.monotonic() < deadline:
            time.sleep(0.05)
            existing = cache.get(key)
        if existing == _PENDING:
            raise TimeoutError("the first submission of this form has not finished")
        if existing is not None:
            return existing, False
