"""Atomic rate limits: one counter per client and window in the shared cache (cache.incr), one round trip.

DRF's own throttles read a list of timestamps, then write it back: two round trips, and concurrent
requests can both slip through. A fixed window counter cannot be raced.
"""

import os
import threading
import time

import redis
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django_redis.cache import RedisCache
from rest_framework.throttling import SimpleRateThrottle

# On the DRF request: {counter key: (count, time)} of hits already counted in another round trip.
COUNTED_HITS = "counted_throttle_hits"


# MGET of the caller's keys, then one hit on the window counter (KEYS[#KEYS]), born with its expiry (ARGV[1]):
# one command on the wire, one reply to parse. A missing key comes back as nil.
_FETCH_AND_HIT = """
local n = #KEYS - 1
local values = {}
if n > 0 then values = redis.call('MGET', unpack(KEYS, 1, n)) end
redis.call('SET', KEYS[#KEYS], 0, 'EX', ARGV[1], 'NX')
values[n + 1] = redis.call('INCR', KEYS[#KEYS])
return values
"""
_held = threading.local()


def _held_client(pooled: redis.Redis) -> tuple[redis.Redis, object]:
    """This thread's own connection to the cache's server, and the script registered on it.

    Every request makes this round trip: a connection the thread keeps skips the pool's checkout, which probes
    the socket with extra system calls each time. A forked process, or another pool, gets a new one.
    """
    key = (os.getpid(), id(pooled.connection_pool))
    if getattr(_held, "key", None) != key:
        client = redis.Redis(connection_pool=pooled.connection_pool, single_connection_client=True)
        _held.client, _held.script, _held.key = client, client.register_script(_FETCH_AND_HIT), key
    return _held.client, _held.script


def fetch_and_hit(keys: list[str], *, slot: str, window_s: int) -> tuple[dict, int]:
    """`cache.get_many(keys)` and one hit on the window counter `slot`: a single round trip on Redis."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if not isinstance(backend, RedisCache):
        return (backend.get_many(keys) if keys else {}), _hit(backend, slot, window_s)
    client = backend.client
    _, script = _held_client(client.get_client(write=True))
    *values, count = script(keys=[*(client.make_key(key) for key in keys), client.make_key(slot)], args=[window_s + 1])
    found = {key: client.decode(value) for key, value in zip(keys, values, strict=True) if value is not None}
    return found, count


def _hit(backend, slot: str, window_s: int) -> int:
    try:
        return backend.incr(slot)
    except ValueError:  # first request of the window
        if backend.add(slot, 1, timeout=window_s + 1):
            return 1
        return backend.incr(slot)


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
        window = int(self.duration)
        counted = getattr(request, COUNTED_HITS, {}).pop(key, None)
        if counted is not None:
            count, now = counted
        else:
            now = time.time()
            _, count = fetch_and_hit([], slot=self.slot(key, now), window_s=window)
        self._wait = window - (now % window)
        return count <= self.num_requests

    def slot(self, key: str, now: float) -> str:
        return f"{key}:{int(now) // int(self.duration)}"

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class AnonThrottle(AtomicRateThrottle):
    scope = "anon"
    scope_kind = "anon"


class UserThrottle(AtomicRateThrottle):
    scope = "user"

    @classmethod
    def fetch_and_hit_for(cls, request, view, *, user_id, keys: list[str]) -> dict:
        """`cache.get_many(keys)` for an authenticator, counting this user's hit in the same round trip when the
        view is throttled per user; the throttle then reads the count from the request instead of the cache.
        """
        throttled = any(issubclass(each, cls) for each in getattr(view, "throttle_classes", ()))
        throttle = cls() if throttled else None
        if throttle is None or throttle.rate is None:
            return cache.get_many(keys)
        key, now = f"throttle:{throttle.scope}:u{user_id}", time.time()
        found, count = fetch_and_hit(keys, slot=throttle.slot(key, now), window_s=int(throttle.duration))
        counted = getattr(request, COUNTED_HITS, None)
        if counted is None:
            counted = {}
            setattr(request, COUNTED_HITS, counted)
        counted[key] = (count, now)
        return found


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
