"""Versioned response caching for hot read endpoints: bytes built once per data version, ETag and 304."""

import hashlib
from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import http_date, parse_etags
from rest_framework.renderers import JSONRenderer

CACHE_TTL_S = 60 * 60  # a new data version makes old entries unreachable long before this


def cache_key(namespace: str, version: str, request: HttpRequest | None = None, *, variant: str = "") -> str:
    """One entry per data version and request shape (host included: paginated bodies carry absolute links)."""
    if request is not None:
        query = "&".join(sorted(f"{k}={v}" for k, values in request.GET.lists() for v in values))
        variant = f"{request.get_host()}{request.path}?{query}{variant}"
    digest = hashlib.sha256(variant.encode()).hexdigest()[:24]
    return f"api-cache:{namespace}:{version}:{digest}"


def store(key: str, data, *, modified: datetime | None, ttl_s: int = CACHE_TTL_S) -> tuple[bytes, str, str | None]:
    body = JSONRenderer().render(data)
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    entry = (body, etag, http_date(modified.timestamp()) if modified else None)
    cache.set(key, entry, timeout=ttl_s)
    return entry


def cached_json_response(
    request: HttpRequest,
    *,
    key: str,
    build: Callable[[], object],
    modified: datetime | None = None,
    max_age_s: int = 30,
    ttl_s: int = CACHE_TTL_S,
) -> HttpResponse:
    """Serve cached JSON bytes (building them on the first miss) with ETag, Last-Modified and 304s."""
    entry = cache.get(key)
    if entry is None:
        entry = store(key, build(), modified=modified, ttl_s=ttl_s)
    body, etag, last_modified = entry
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and (etag in parse_etags(if_none_match) or if_none_match.strip() == "*"):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    if last_modified:
        response["Last-Modified"] = last_modified
    response["Cache-Control"] = f"max-age={max_age_s}"
    return response
