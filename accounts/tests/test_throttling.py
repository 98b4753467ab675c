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
