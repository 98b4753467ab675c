"""Browser forms and services: a service's refusal shown beside the field it concerns."""

from django import forms
from rest_framework.exceptions import ValidationError

from .errors import DomainError


def add_service_errors(form: forms.BaseForm, exc: ValidationError | DomainError) -> None:
    """Put a DomainError or a DRF ValidationError ({field: [messages]}) on the form, field by field.

    A field the form does not have ("params.fast" is one when the form names its inputs so) becomes a
    form-wide error, so nothing a service says is ever dropped.
    """
    if isinstance(exc, DomainError):
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return
    detail = exc.detail if isinstance(exc.detail, dict) else {None: exc.detail}
    for name, errors in detail.items():
        for error in errors if isinstance(errors, list) else [errors]:
            form.add_error(name if name in form.fields else None, str(error))
