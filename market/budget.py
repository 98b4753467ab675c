"""One CoinGecko call budget for the whole deployment: a sliding one-minute window shared through Redis."""

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

# Atomic in Redis: forget calls older than the window, then either record this one or say how long to wait.
_SLIDING_WINDOW = """
local key, now_ms, window_ms, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now_ms, member)
  redis.call('PEXPIRE', key, window_ms)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window_ms - now_ms)
"""


class CallBudgetExhausted(Exception):
    """No call could be made within the allowed wait: try again later (after `retry_after_s`)."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"CoinGecko call budget exhausted; next call in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class CallBudget:
    """At most `limit` calls in any `window_s` seconds, across every process sharing the cache."""

    def __init__(
        self,
        *,
        limit: int | None = None,
        window_s: float = 60.0,
        key: str = "coingecko:calls",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.limit = limit or settings.COINGECKO_CALLS_PER_MINUTE
        self.window_ms = int(window_s * 1000)
        self.key = key
        self.clock = clock
        self.sleep = sleep
        self._redis = _redis_client()

    def acquire(self, *, max_wait_s: float = 30.0) -> None:
        """Take one call from the budget, waiting (queueing) up to `max_wait_s` for room."""
        waited = 0.0
        while True:
            wait_ms = self._try_take()
            if wait_ms == 0:
                return
            wait_s = wait_ms / 1000
            if waited + wait_s > max_wait_s:
                raise CallBudgetExhausted(wait_s)
            self.sleep(wait_s)
            waited += wait_s

    def _try_take(self) -> int:
        now_ms = int(self.clock() * 1000)
        if self._redis is not None:
            member = f"{now_ms}:{uuid.uuid4().hex}"
            return int(
                self._redis.eval(_SLIDING_WINDOW, 1, self._full_key(), now_ms, self.window_ms, self.limit, member)
            )
        return _local_take(self.key, now_ms, self.window_ms, self.limit)

    def _full_key(self) -> str:
        return cache.make_key(self.key)


def _redis_client():
    """The raw Redis connection behind the cache, or None for the embedded local-memory cache."""
    if "django_redis" not in settings.CACHES["default"]["BACKEND"]:
        return None
    from django_redis import get_redis_connection

    return get_redis_connection("default")


# Embedded mode (no Redis): one process, so a lock and a deque are the whole deployment.
_local_lock = threading.Lock()
_local_calls: dict[str, deque[int]] = {}


def _local_take(key: str, now_ms: int, window_ms: int, limit: int) -> int:
    with _local_lock:
        calls = _local_calls.setdefault(key, deque())
        while calls and calls[0] <= now_ms - window_ms:
            calls.popleft()
        if len(calls) < limit:
            calls.append(now_ms)
            return 0
        return max(1, calls[0] + window_ms - now_ms)
