"""Versioned response caching for hot read endpoints: bytes built once per data version, ETag and 304."""

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, QueryDict
from django.utils.http import http_date, parse_etags
from rest_framework.renderers import JSONRenderer

CACHE_TTL_S = 60 * 60  # a new data version makes old entries unreachable long before this


def cache_key(
    namespace: str, version: str, *, params: Mapping[str, object] | None = None, host: str = "", variant: str = ""
) -> str:
    """One entry per data version and normalised request: the parameters the endpoint reads, sorted.

    Build `params` with `known_params` (or from validated input), never from the raw query string: a
    parameter the endpoint ignores must not make an entry of its own. `host` is for bodies with absolute links.
    """
    shape = "&".join(f"{name}={params[name]}" for name in sorted(params or {}))
    digest = hashlib.sha256(f"{host}|{variant}|{shape}".encode()).hexdigest()[:24]
    return f"api-cache:{namespace}:{version}:{digest}"


def known_params(
    query: QueryDict, names: Iterable[str], *, defaults: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The named parameters only, each with its last value (as Django reads it), blanks dropped, defaults filled."""
    found: dict[str, object] = dict(defaults or {})
    for name in names:
        value = query.get(name, "")
        if isinstance(value, str):
            value = value.strip()
        if value != "":
            found[name] = value
    return found


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
