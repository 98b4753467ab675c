"""RFC 9457 problem details: the one shape of every API error, raised or not."""

import logging
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cryptodesk.errors import DomainError, FieldErrors

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger("cryptodesk.api")


_SLUGS = {
    400: "bad-request",
    401: "not-authenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "unprocessable-content",
    429: "throttled",
    500: "server-error",
    503: "service-unavailable",
}


def problem(status: int, *, detail: str, slug: str | None = None, title: str | None = None, **extra: Any) -> dict:
    body = {
        "type": f"/problems/{slug or _SLUGS.get(status, 'error')}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return body


def problem_response(status: int, **kwargs: Any) -> JsonResponse:
    """For plain Django views and middleware (outside DRF)."""
    return JsonResponse(problem(status, **kwargs), status=status, content_type=PROBLEM_CONTENT_TYPE)


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" | "parent.0.child": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                flat.setdefault(field, []).extend(messages)
    elif isinstance(errors, list):
        if all(not isinstance(item, dict | list) for item in errors):
            flat[prefix or "non_field_errors"] = [str(item) for item in errors]
        else:
            for index, value in enumerate(errors):
                for field, messages in _flatten(value, f"{prefix}.{index}" if prefix else str(index)).items():
                    flat.setdefault(field, []).extend(messages)
    else:
        flat[prefix or "non_field_errors"] = [str(errors)]
    return flat


def _validation_body(exc: exceptions.ValidationError) -> dict:
    errors = _flatten(exc.detail)
    first_field, first_messages = next(iter(errors.items()), ("", ["Invalid input."]))
    prefix = "" if first_field == "non_field_errors" else f"{first_field}: "
    return problem(
        400,
        slug="validation-error",
        title="Your request has invalid fields",
        detail=f"{prefix}{first_messages[0]}",
        errors=errors,
    )


class ProblemJSONRenderer(JSONRenderer):
    media_type = PROBLEM_CONTENT_TYPE
    format = "problem+json"


def _render_as_problem(context: dict) -> None:
    """An error is problem JSON whatever the client negotiated (`?format=csv` included).

    DRF renders the response with the request's negotiated renderer, so that is the one to replace.
    """
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = ProblemJSONRenderer()
        request.accepted_media_type = PROBLEM_CONTENT_TYPE


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: every error leaves as application/problem+json."""
    _render_as_problem(context)
    if isinstance(exc, DomainError):
        extra = {"errors": {exc.field: [exc.detail]}} if exc.field else {}
        if isinstance(exc, FieldErrors):
            extra = {"errors": exc.errors}
        body = problem(exc.status, slug=exc.slug, title=exc.title, detail=exc.detail, **extra)
        return Response(body, status=exc.status, headers=exc.headers, content_type=PROBLEM_CONTENT_TYPE)

    if isinstance(exc, SuspiciousOperation):  # too many fields or files, a body too big: Django's own 400
        logger.warning("Refused request: %s", exc)
        body = problem(400, detail="This request was refused: too many fields or files, or a body too large.")
        return Response(body, status=400, content_type=PROBLEM_CONTENT_TYPE)

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        body = problem(500, detail="Something went wrong on our side. It has been logged.")
        return Response(body, status=500, content_type=PROBLEM_CONTENT_TYPE)

    if isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc)
    elif isinstance(exc, Http404):
        body = problem(404, detail="Not found.")
    elif isinstance(exc, PermissionDenied):
        body = problem(403, detail="You do not have permission to perform this action.")
    else:
        detail = getattr(exc, "detail", str(exc))
        if isinstance(detail, dict | list):
            flat = _flatten(detail)
            detail = next(iter(flat.values()))[0] if flat else "Error."
        body = problem(response.status_code, detail=str(detail))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            body["retry_after_s"] = int(exc.wait) + (exc.wait % 1 > 0)
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")
