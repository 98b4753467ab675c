"""Domain errors: a business rule said no. The API turns them into problem details."""


class DomainError(Exception):
    """Carries its HTTP status, a stable slug, a human title and optionally the field it concerns."""

    status: int = 400
    slug: str = "domain-error"
    title: str = "Request could not be completed"

    def __init__(self, detail: str, *, field: str | None = None, headers: dict[str, str] | None = None):
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
