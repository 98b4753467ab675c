"""Socket limits: open sockets per user (shared cache, every process together) and messages per socket."""

import time
from collections import deque

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

_COUNT_TTL_S = 6 * 3600  # a process that died without closing its sockets leaves counts that expire


def socket_count_key(user_id) -> str:
    return f"ws:sockets:{user_id}"


@database_sync_to_async
def claim_socket(user_id) -> bool:
    """Count one more open socket for the user; False (and nothing counted) past WS_MAX_SOCKETS_PER_USER."""
    key = socket_count_key(user_id)
    cache.add(key, 0, timeout=_COUNT_TTL_S)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=_COUNT_TTL_S)
        count = 1
    cache.touch(key, timeout=_COUNT_TTL_S)
    if count > settings.WS_MAX_SOCKETS_PER_USER:
        _release(key)
        return False
    return True


def _release(key: str) -> None:
    try:
        if cache.decr(key) < 0:
            cache.set(key, 0, timeout=_COUNT_TTL_S)
    except ValueError:
        pass  # expired: nothing left to give back


@database_sync_to_async
def release_socket(user_id) -> None:
    _release(socket_count_key(user_id))


class MessageRate:
    """At most `limit` messages in any `window_s`: a sliding window of arrival times."""

    def __init__(self, *, limit: int, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self._arrivals: deque[float] = deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self._arrivals and now - self._arrivals[0] >= self.window_s:
            self._arrivals.popleft()
        if len(self._arrivals) >= self.limit:
            return False
        self._arrivals.append(now)
        return True
