"""API edge: slash-less paths are served as-is and oversized bodies are refused before anything reads them."""

from django.conf import settings
from django.urls import Resolver404, resolve

from .problems import is_api_request, problem_response


class ApiEdgeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
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
