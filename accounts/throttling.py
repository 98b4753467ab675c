"""Login throttling: an atomic counter per account and per address in the shared cache.

Each attempt takes a slot *before* the password is checked, so concurrent guesses cannot all slip
under the limit; a successful login gives its slot back. Fixed one-minute windows.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


@dataclass(frozen=True)
class LoginSlot:
    keys: tuple[str, ...]
    allowed: bool
    retry_after_s: int

    def release(self) -> None:
        """A successful login does not count as a failure."""
        for key in self.keys:
            try:
                cache.decr(key)
            except ValueError:
                pass  # the window ended meanwhile


def _key(kind: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no email addresses in cache keys
    return f"login-attempts:{kind}:{digest}:{int(time.time()) // window}"


def _incr(key: str, window: int) -> int:
    cache.add(key, 0, timeout=window + 1)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 1)
        return 1


def take_login_slot(*, email: str, ip: str | None) -> LoginSlot:
    """Take a slot on the account's counter, then on the address's; a refusal gives back what it took."""
    window = settings.LOGIN_FAILURE_WINDOW_S
    limit = settings.LOGIN_FAILURE_LIMIT
    retry_after = max(window - int(time.time()) % window, 1)
    taken: list[str] = []
    for key in [_key("account", email.strip().lower(), window)] + ([_key("ip", ip, window)] if ip else []):
        count = _incr(key, window)
        taken.append(key)
        if count > limit:
            # Refused: give back the earlier slots so the account is not charged for the address's limit.
            LoginSlot(keys=tuple(taken[:-1]), allowed=False, retry_after_s=retry_after).release()
            return LoginSlot(keys=(), allowed=False, retry_after_s=retry_after)
    return LoginSlot(keys=tuple(taken), allowed=True, retry_after_s=retry_after)
