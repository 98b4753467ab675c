"""Strategy refusals: domain errors the API renders as problem details and the pages put beside a field."""

from cryptodesk.errors import DomainError, FieldErrors


class NotAllowed(DomainError):
    status = 403
    slug = "permission-denied"
    title = "Not allowed"


class TooManyBacktests(DomainError):
    status = 429
    slug = "too-many-backtests"
    title = "Too many backtests at once"


def field_error(field: str, message: str) -> FieldErrors:
    return FieldErrors({field: [message]})
