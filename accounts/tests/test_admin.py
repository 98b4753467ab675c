"""Operators in the Django admin: search, filter, deactivate (which ends every session)."""

import pytest

from accounts.models import DeviceSession, User
from conftest import PASSWORD, api_for, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    operator = User.objects.create_superuser("ops@example.com", PASSWORD)
    assert operator.is_staff
    assert operator.role == User.Role.ADMIN
    client.post("/login/", {"email": "ops@example.com", "password": PASSWORD})
    return client


def test_role_admin_is_staff_and_others_are_not(db):
    analyst = make_user("ana@example.com", role=User.Role.ANALYST)
    assert analyst.is_staff is False
    analyst.role = User.Role.ADMIN
    analyst.save()
    assert analyst.is_staff is True


def test_traders_cannot_open_the_admin(client, alice):
    client.post("/login/", {"email": "alice@example.com", "password": PASSWORD})
    assert client.get("/admin/").status_code == 302


def test_admin_user_list_search_and_filter(operator_client, alice, bob):
    make_user("ana@example.com", role=User.Role.ANALYST)
    page = operator_client.get("/admin/accounts/user/?q=alice").content.decode()
    assert "alice@example.com" in page
    assert "bob@example.com" not in page
    analysts = operator_client.get("/admin/accounts/user/?role__exact=analyst").content.decode()
    assert "ana@example.com" in analysts
    assert "alice@example.com" not in analysts
    unverified = operator_client.get("/admin/accounts/user/?email_verified__exact=0").content.decode()
    assert "ana@example.com" in unverified
    assert "bob@example.com" not in unverified


def test_admin_deactivate_action_revokes_sessions(operator_client, alice):
    alice_api = api_for(alice)
    response = operator_client.post(
        "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": [alice.pk]}, follow=True
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.is_active is False
    assert alice_api.get("/api/v1/me/").status_code == 401
    assert not DeviceSession.objects.filter(user=alice, revoked_at__isnull=True).exists()


def test_admin_edit_deactivation_revokes_sessions(operator_client, alice):
    alice_api = api_for(alice)
    form = {
        "email": alice.email,
        "display_name": alice.display_name,
        "base_currency": "usd",
        "timezone": "UTC",
        "email_verified": "on",
        "role": "trader",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "device_sessions-TOTAL_FORMS": "1",
        "device_sessions-INITIAL_FORMS": "1",
        "device_sessions-MIN_NUM_FORMS": "0",
        "device_sessions-MAX_NUM_FORMS": "1000",
        "device_sessions-0-id": str(alice_api.tokens.session.pk),
        "device_sessions-0-user": str(alice.pk),
    }
    response = operator_client.post(f"/admin/accounts/user/{alice.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.is_active is False
    assert alice_api.get("/api/v1/me/").status_code == 401


def test_admin_role_operators_can_manage_without_being_superusers(client):
    operator = make_user("op2@example.com", role=User.Role.ADMIN)
    assert operator.is_superuser is False
    client.post("/login/", {"email": "op2@example.com", "password": PASSWORD})
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/market/syncrun/").status_code == 200
