"""Single-flight locks in the shared cache: a token only its holder can release."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextmanager
def single_flight(name: str, *, ttl_s: int) -> Iterator[bool]:
    """`with single_flight("sync-markets", ttl_s=120) as acquired:` — False when another holder runs."""
    key = f"lock:{name}"
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, timeout=ttl_s)
    try:
        yield acquired
    finally:
        if acquired:
            _release(key, token)


def _release(key: str, token: str) -> None:
    if "django_redis" in settings.CACHES["default"]["BACKEND"]:
        from django_redis import get_redis_connection

        # django-redis pickles values; compare what it stored for our token, atomically
        raw_token = cache.client.encode(token)
        get_redis_connection("default").eval(_RELEASE, 1, cache.make_key(key), raw_token)
    elif cache.get(key) == token:  # local memory: one process, no race worth a script
        cache.delete(key)
