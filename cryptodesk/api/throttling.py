"""Atomic rate limits: one counter per client and window in the shared cache (cache.incr), one round trip.

DRF's own throttles read a list of timestamps, then write it back: two round trips, and concurrent
requests can both slip through. A fixed window counter cannot be raced.
"""

import time

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle


class AtomicRateThrottle(SimpleRateThrottle):
    scope_kind = "user"  # "user": per user, or per address for anonymous; "anon": anonymous only

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            if self.scope_kind == "anon":
                return None
            ident = f"u{request.user.pk}"
        else:
            ident = f"a{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(self.duration)
        slot = f"{key}:{int(now) // window}"
        try:
            count = cache.incr(slot)
        except ValueError:  # first request of the window
            if cache.add(slot, 1, timeout=window + 1):
                count = 1
            else:
                count = cache.incr(slot)
        self._wait = window - (now % window)
        return count <= self.num_requests

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class AnonThrottle(AtomicRateThrottle):
    scope = "anon"
    scope_kind = "anon"


class UserThrottle(AtomicRateThrottle):
    scope = "user"


class ScopedThrottle(AtomicRateThrottle):
    """The view's `throttle_scope` (e.g. "auth"), per user or address."""

    def __init__(self):
        pass  # the rate depends on the view: read in allow_request

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)
