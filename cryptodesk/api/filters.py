"""Filter fields for every FilterSet: numbers and datetimes checked before they reach a query."""

from datetime import UTC, datetime, timedelta

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from cryptodesk.forms import BoundedDecimalField, BoundedIntegerField

MAX_DATETIME_CHARS = 64
MAX_UTC_OFFSET = timedelta(hours=18)  # ISO 8601 practice; real zones span -12:00 to +14:00
MAX_ID = 2**63 - 1


class SafeIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime any database can hold: offset within ±18:00, converted to UTC in range."""

    def to_python(self, value) -> datetime | None:
        if isinstance(value, str) and len(value) > MAX_DATETIME_CHARS:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise ValidationError("The UTC offset must be between -18:00 and +18:00.", code="invalid")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValidationError("This date and time is out of range once converted to UTC.", code="invalid") from None


class SafeIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = SafeIsoDateTimeField


class BoundedNumberFilter(django_filters.NumberFilter):
    """A decimal filter whose input is size-checked before conversion (`parse_bounded_decimal`)."""

    field_class = BoundedDecimalField


class IdFilter(django_filters.NumberFilter):
    """A primary-key filter: a whole number from 1 to the largest bigint."""

    field_class = BoundedIntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
