"""Domain errors: a business rule said no. The API turns them into problem details."""

import string
from decimal import Decimal

from .money import as_str


class _PlainNumbers(string.Formatter):
    """ "{needed:money}" with needed=Decimal("100100.00") → "100100": the exact number, as the API writes it."""

    def format_field(self, value, format_spec: str) -> str:
        if isinstance(value, Decimal):
            return as_str(value)
        return super().format_field(value, "")


class DomainError(Exception):
    """Carries its HTTP status, a stable slug, a human title and optionally the field it concerns.

    With `values`, `detail` is a template naming each Decimal and how a page shows it ("needs {needed:money}",
    "{held:qty}"): `detail` becomes the plain text (exact numbers, for the API), `template` and `values` stay for
    the pages to format the numbers as they print them.
    """

    status: int = 400
    slug: str = "domain-error"
    title: str = "Request could not be completed"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        values: dict[str, object] | None = None,
    ):
        self.template = detail if values else None
        self.values = dict(values or {})
        if values:
            detail = _PlainNumbers().format(detail, **values)
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers or {}


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class FieldErrors(DomainError):
    """Several fields refused at once: `errors` is {field: [messages]}, the first one is the detail."""

    slug = "validation-error"
    title = "Your request has invalid fields"

    def __init__(self, errors: dict[str, list[str]], *, headers: dict[str, str] | None = None):
        field, messages = next(iter(errors.items()))
        super().__init__(messages[0], field=field, headers=headers)
        self.errors = {name: list(messages) for name, messages in errors.items()}
