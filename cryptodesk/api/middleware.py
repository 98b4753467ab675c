"""Request edge: NUL bytes refused; API paths without a slash served as-is, oversized API bodies refused unread."""

import functools
from http import HTTPStatus
from urllib.parse import unquote

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve

from .problems import is_api_request, problem_response


class ApiEdgeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _has_nul(request):
            # text columns cannot hold NUL (PostgreSQL refuses it), and no URL needs one
            if is_api_request(request):
                return problem_response(400, detail="NUL characters are not allowed in the path or query string.")
            from cryptodesk.views import bad_request

            return bad_request(request)
        if is_api_request(request):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return problem_response(400, detail="Content-Length is not a number.")
            if length > settings.API_MAX_BODY_BYTES:
                limit_mb = settings.API_MAX_BODY_BYTES // (1024 * 1024)
                return problem_response(413, detail=f"Request bodies are limited to {limit_mb} MB.")
            self._add_missing_slash(request)
        return self.get_response(request)

    @staticmethod
    def _add_missing_slash(request) -> None:
        """`POST /api/v1/auth/token` is served like `/api/v1/auth/token/`: no redirect, no lost body."""
        if request.path_info.endswith("/"):
            return
        if _is_endpoint(request.path_info) or not _is_endpoint(request.path_info + "/"):
            return
        request.path_info += "/"
        request.path += "/"


def _is_endpoint(path: str) -> bool:
    from cryptodesk.views import api_not_found

    try:
        return resolve(path).func is not api_not_found
    except Resolver404:
        return False


def _has_nul(request) -> bool:
    return "\x00" in request.path or "\x00" in unquote(request.META.get("QUERY_STRING", ""))


_POLICY_OVERRIDES = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)
_POLICY_SETTINGS = {"CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"}


@functools.cache
def _settings_policy(report_only: bool) -> tuple[str, tuple[str, ...]]:
    """The settings' policy header and its excluded URL prefixes: the same for every response without a nonce."""
    name = "CONTENT_SECURITY_POLICY_REPORT_ONLY" if report_only else "CONTENT_SECURITY_POLICY"
    prefixes = tuple((getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES") or ())
    return build_policy(report_only=report_only), prefixes


@receiver(setting_changed)
def _forget_policy(*, setting: str, **kwargs) -> None:
    if setting in _POLICY_SETTINGS:
        _settings_policy.cache_clear()


class CSPMiddleware(BaseCSPMiddleware):
    """django-csp's middleware, with the settings' policy built once instead of on every response.

    A response that used a nonce or carries a per-view policy (the csp decorators) takes the library's own path.
    """

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            hasattr(response, name) for name in _POLICY_OVERRIDES
        ):
            return super().process_response(request, response)
        if settings.DEBUG and response.status_code in (HTTPStatus.INTERNAL_SERVER_ERROR, HTTPStatus.NOT_FOUND):
            return response
        for header, report_only, exempt in (
            (HEADER, False, "_csp_exempt"),
            (HEADER_REPORT_ONLY, True, "_csp_exempt_ro"),
        ):
            policy, excluded = _settings_policy(report_only)
            if (
                policy
                and header not in response
                and getattr(response, exempt, False) is False
                and not request.path_info.startswith(excluded)
            ):
                response[header] = policy
        # the header is written: a nonce asked for from now on could not be in it
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
