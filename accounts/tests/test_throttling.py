"""Login throttling: 5 failures a minute per account and per address, atomic under concurrency."""

import pytest
from rest_framework.test import APIClient

from accounts.models import DeviceSession
from conftest import PASSWORD, needs_concurrent_db, run_concurrently

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"


def attempt(client: APIClient, email: str, password: str, ip: str = "10.0.0.1"):
    return client.post(TOKEN, {"email": email, "password": password}, format="json", REMOTE_ADDR=ip)


def test_sixth_failure_in_a_minute_is_429_with_retry_after(anon_api, alice):
    for _ in range(5):
        assert attempt(anon_api, "alice@example.com", "wrong").status_code == 401
    response = attempt(anon_api, "alice@example.com", PASSWORD)  # even the right password waits
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert response.json()["status"] == 429
    assert not DeviceSession.objects.exists()


def test_throttle_is_per_account_across_addresses(anon_api, alice, bob):
    for index in range(5):
        attempt(anon_api, "alice@example.com", "wrong", ip=f"10.0.1.{index}")
    assert attempt(anon_api, "alice@example.com", PASSWORD, ip="10.0.2.1").status_code == 429
    assert attempt(anon_api, "bob@example.com", PASSWORD, ip="10.0.2.1").status_code == 200


def test_throttle_is_per_address_across_accounts(anon_api, alice, bob):
    for index in range(5):
        attempt(anon_api, f"user{index}@example.com", "wrong", ip="10.0.3.3")
    assert attempt(anon_api, "bob@example.com", PASSWORD, ip="10.0.3.3").status_code == 429
    assert attempt(anon_api, "bob@example.com", PASSWORD, ip="10.0.3.4").status_code == 200


def test_successful_logins_do_not_count(anon_api, alice):
    for _ in range(8):
        assert attempt(anon_api, "alice@example.com", PASSWORD).status_code == 200
    for _ in range(5):
        assert attempt(anon_api, "alice@example.com", "wrong").status_code == 401
    assert attempt(anon_api, "alice@example.com", "wrong").status_code == 429


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_cannot_slip_under_the_limit(alice):
    statuses = run_concurrently(
        12, lambda index: attempt(APIClient(), "alice@example.com", f"wrong-{index}").status_code
    )
    assert len(statuses) == 12
    assert statuses.count(401) == 5
    assert statuses.count(429) == 7


def test_browser_login_is_throttled_too(client, alice):
    for _ in range(5):
        response = client.post("/login/", {"email": "alice@example.com", "password": "wrong"})
        assert response.status_code == 200
        assert b"Email or password is not correct." in response.content
    response = client.post("/login/", {"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(1_800_000_000.0)  # a minute boundary: the old fixed window would reset at +60 s
    monkeypatch.setattr("accounts.throttling.clock", fake)
    return fake


def test_the_window_slides_across_a_minute_boundary(anon_api, alice, clock):
    clock.now += 59
    for _ in range(5):
        assert attempt(anon_api, "alice@example.com", "wrong").status_code == 401
    clock.now += 2  # t = 61 s: a fixed window would have started over
    for _ in range(5):
        response = attempt(anon_api, "alice@example.com", "wrong")
        assert response.status_code == 429
        assert int(response["Retry-After"]) == 58  # the first failure leaves the window at t = 119 s
    clock.now += 58
    assert attempt(anon_api, "alice@example.com", PASSWORD).status_code == 200


def test_failures_leave_the_window_one_by_one(anon_api, alice, clock):
    for _ in range(4):
        attempt(anon_api, "alice@example.com", "wrong")
        clock.now += 10
    attempt(anon_api, "alice@example.com", "wrong")  # failures at 0, 10, 20, 30, 40 s
    assert attempt(anon_api, "alice@example.com", "wrong").status_code == 429
    clock.now = 1_800_000_060.5  # the one at 0 s has left: one slot
    assert attempt(anon_api, "alice@example.com", "wrong").status_code == 401
    assert attempt(anon_api, "alice@example.com", "wrong").status_code == 429


def test_refused_attempts_do_not_extend_the_lockout(anon_api, alice, clock):
    for _ in range(5):
        attempt(anon_api, "alice@example.com", "wrong")
    for _ in range(30):
        clock.now += 1
        assert attempt(anon_api, "alice@example.com", "wrong").status_code == 429
    clock.now += 30
    assert attempt(anon_api, "alice@example.com", PASSWORD).status_code == 200


def test_a_window_admits_exactly_its_limit_under_concurrent_hits():
    from accounts.throttling import hit

    verdicts = run_concurrently(30, lambda index: hit("race", limit=7, window_s=60))
    assert sum(verdict.allowed for verdict in verdicts) == 7
    assert all(1 <= verdict.retry_after_s <= 60 for verdict in verdicts if not verdict.allowed)
