"""Shared fixtures: personas alice and bob with real JWTs, a clean cache for every test."""

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import Client, start_api_session

PASSWORD = "correct-horse-battery-9"

# Row locks and conditional updates racing across connections need a real server (CI runs PostgreSQL).
needs_concurrent_db = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="concurrency tests need PostgreSQL (set DATABASE_URL); SQLite serialises every writer",
)

T = TypeVar("T")


def run_concurrently(count: int, work: Callable[[int], T]) -> list[T]:
    """Release `count` threads at once (a barrier); each runs work(index) on its own database connection."""
    barrier = threading.Barrier(count)
    results: list[T] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            result = work(index)
            with lock:
                results.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == count, "a worker failed or hung"
    return results


@pytest.fixture(autouse=True)
def _clean_cache():
    """Throttle counters and session flags from one test never leak into the next."""
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
    return


def make_user(email: str, **extra) -> User:
    return User.objects.create_user(email, PASSWORD, **extra)


def api_for(user: User, *, user_agent: str = "pytest-client/1.0") -> APIClient:
    pair = start_api_session(user=user, client=Client(user_agent=user_agent, ip="127.0.0.1"))
    client = APIClient(HTTP_USER_AGENT=user_agent)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair.access}")
    client.tokens = pair  # the test may need the refresh token or the session
    return client


@pytest.fixture
def alice(db) -> User:
    return make_user("alice@example.com", display_name="Alice", email_verified=True)


@pytest.fixture
def bob(db) -> User:
    return make_user("bob@example.com", display_name="Bob", email_verified=True)


@pytest.fixture
def alice_api(alice) -> APIClient:
    return api_for(alice)


@pytest.fixture
def bob_api(bob) -> APIClient:
    return api_for(bob)


@pytest.fixture
def anon_api() -> APIClient:
    return APIClient()
