"""Login throttling: a sliding window of failures per account and per address in the shared cache.

Each attempt takes a slot *before* the password is checked, so concurrent guesses cannot all slip under
the limit; a successful login gives its slot back. The window slides: at any moment at most `limit` slots
were taken in the last `window` seconds (a fixed window lets twice the limit through across its edge).
With Redis a window is a sorted set trimmed, counted and extended by one Lua script (atomic on the
server); with the local-memory cache of a single process, a lock makes the same three steps atomic.
"""

import hashlib
import math
import threading
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

_TAKE = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tostring(tonumber(oldest[2]) + window - now)}
"""
_local_lock = threading.Lock()


def clock() -> float:
    """Seconds since the epoch; one function so tests can move time."""
    return time.time()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int
    key: str = ""
    member: str = ""
    window_s: int = 0


def _uses_redis() -> bool:
    return settings.CACHES["default"]["BACKEND"].startswith("django_redis")


def _redis():
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def hit(name: str, *, limit: int, window_s: int) -> Verdict:
    """Take one slot in the window `name` if fewer than `limit` were taken in the last `window_s` seconds."""
    key, member, now = cache.make_key(f"window:{name}"), uuid.uuid4().hex, clock()
    if _uses_redis():
        take = _redis().register_script(_TAKE)  # EVALSHA, loading the script once per server
        allowed, wait = take(keys=[key], args=[repr(now), window_s, limit, member])
        wait_s = float(wait)
    else:
        with _local_lock:
            entries = [entry for entry in cache.get(key, []) if entry[0] > now - window_s]
            allowed = len(entries) < limit
            if allowed:
                entries.append((now, member))
            cache.set(key, entries, timeout=window_s + 1)
            wait_s = 0.0 if allowed else min(entry[0] for entry in entries) + window_s - now
    if not allowed:
        return Verdict(allowed=False, retry_after_s=max(math.ceil(wait_s), 1))
    return Verdict(allowed=True, retry_after_s=0, key=key, member=member, window_s=window_s)


def give_back(verdict: Verdict) -> None:
    """Remove a slot taken by `hit`, as if the attempt had never happened."""
    if not verdict.allowed:
        return
    if _uses_redis():
        _redis().zrem(verdict.key, verdict.member)
        return
    with _local_lock:
        entries = cache.get(verdict.key)
        if entries:
            remaining = [entry for entry in entries if entry[1] != verdict.member]
            cache.set(verdict.key, remaining, timeout=verdict.window_s + 1)


@dataclass(frozen=True)
class LoginSlot:
    taken: tuple[Verdict, ...]
    allowed: bool
    retry_after_s: int

    def release(self) -> None:
        """A successful login does not count as a failure."""
        for verdict in self.taken:
            give_back(verdict)


def _name(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no email addresses in cache keys
    return f"login-failures:{kind}:{digest}"


def take_login_slot(*, email: str, ip: str | None) -> LoginSlot:
    """Take a slot on the account's window, then on the address's; a refusal gives back what it took."""
    window = settings.LOGIN_FAILURE_WINDOW_S
    limit = settings.LOGIN_FAILURE_LIMIT
    names = [_name("account", email.strip().lower())] + ([_name("ip", ip)] if ip else [])
    taken: list[Verdict] = []
    for name in names:
        verdict = hit(name, limit=limit, window_s=window)
        if not verdict.allowed:
            # Refused: give back the earlier slots so the account is not charged for the address's limit.
            LoginSlot(taken=tuple(taken), allowed=False, retry_after_s=verdict.retry_after_s).release()
            return LoginSlot(taken=(), allowed=False, retry_after_s=verdict.retry_after_s)
        taken.append(verdict)
    return LoginSlot(taken=tuple(taken), allowed=True, retry_after_s=0)
