"""Request facts the account code needs."""

from django.conf import settings
from django.http import HttpRequest

from .services import Client


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or the address NUM_PROXIES trusted proxies in front of us saw."""
    proxies = getattr(settings, "NUM_PROXIES", 0)
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


def client_of(request: HttpRequest) -> Client:
    return Client(user_agent=request.META.get("HTTP_USER_AGENT", ""), ip=client_ip(request))


def site_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/")
