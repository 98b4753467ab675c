"""Benchmark routes: every project route plus bare views (a constant, cached bytes), the floors requests are compared to."""

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.urls import path

from cryptodesk import urls as project

CONSTANT_BODY = b'{"ok":true}'
# Set by bench/market.py before the load starts: the body GET /api/v1/coins/ returns, same size and bytes.
CACHED_BYTES_KEY = "bench:cached-bytes"


def constant(request: HttpRequest) -> HttpResponse:
    """The whole middleware stack and nothing else: no DRF, no auth, no database."""
    return HttpResponse(CONSTANT_BODY, content_type="application/json")


def cached_bytes(request: HttpRequest) -> HttpResponse:
    """The floor of any cached endpoint: the middleware stack, one cache round trip, the bytes sent back."""
    body = cache.get(CACHED_BYTES_KEY)
    if body is None:  # a miss must not look like a fast success to the load generator
        return HttpResponse(status=503)
    return HttpResponse(body, content_type="application/json")


urlpatterns = [
    path("bench/constant/", constant),
    path("bench/cached-bytes/", cached_bytes),
    *project.urlpatterns,
]

handler400 = project.handler400
handler403 = project.handler403
handler404 = project.handler404
handler500 = project.handler500
