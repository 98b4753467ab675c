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


def test_admin_login_keeps_the_operator_logged_in_with_a_device_session(client):
    operator = User.objects.create_superuser("ops@example.com", PASSWORD)
    response = client.post("/admin/login/?next=/admin/", {"email": "ops@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == "/admin/"
    session = DeviceSession.objects.get(user=operator)
    assert session.kind == DeviceSession.Kind.BROWSER
    assert client.session["device_session_id"] == str(session.pk)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 200  # still logged in on the request after


def test_admin_login_is_throttled_like_the_site_login(client):
    User.objects.create_superuser("ops@example.com", PASSWORD)
    for _ in range(5):
        response = client.post("/admin/login/", {"email": "ops@example.com", "password": "wrong"})
        assert response.status_code == 200
        assert b"Email or password is not correct." in response.content
    response = client.post("/admin/login/", {"email": "ops@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert not DeviceSession.objects.exists()
    assert client.get("/admin/").status_code == 302


def test_admin_login_page_is_the_site_login_form(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


def test_signed_in_trader_on_admin_login_is_not_sent_round_in_circles(client, alice):
    client.post("/login/", {"email": "alice@example.com", "password": PASSWORD})
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response.url == "/dashboard/"


def test_admin_logout_ends_the_device_session(operator_client):
    session = DeviceSession.objects.get(revoked_at__isnull=True)
    response = operator_client.post("/admin/logout/")
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.revoked_at is not None
    assert operator_client.get("/admin/").status_code == 302


def test_operator_password_change_ends_the_users_tokens_at_once(operator_client, alice):
    alice_api = api_for(alice)
    assert alice_api.get("/api/v1/me/").status_code == 200  # the session flag and user row are cached now
    response = operator_client.post(
        f"/admin/accounts/user/{alice.pk}/password/",
        {"password1": "operator-set-secret-2026", "password2": "operator-set-secret-2026", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert alice.check_password("operator-set-secret-2026")
    assert alice_api.get("/api/v1/me/").status_code == 401
    refreshed = alice_api.post("/api/v1/auth/token/refresh/", {"refresh": alice_api.tokens.refresh}, format="json")
    assert refreshed.status_code == 401
    session = DeviceSession.objects.get(user=alice)
    assert session.revoked_reason == "password changed by an operator"


def test_operator_bulk_delete_ends_the_users_tokens_at_once(operator_client, alice, bob):
    alice_api, bob_api = api_for(alice), api_for(bob)
    assert alice_api.get("/api/v1/me/").status_code == 200
    assert bob_api.get("/api/v1/me/").status_code == 200
    response = operator_client.post(
        "/admin/accounts/user/",
        {"action": "delete_selected", "_selected_action": [alice.pk, bob.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk__in=[alice.pk, bob.pk]).exists()
    assert alice_api.get("/api/v1/me/").status_code == 401
    assert bob_api.get("/api/v1/me/").status_code == 401


def test_operator_single_delete_ends_the_users_tokens_at_once(operator_client, alice):
    alice_api = api_for(alice)
    assert alice_api.get("/api/v1/me/").status_code == 200
    response = operator_client.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=alice.pk).exists()
    assert alice_api.get("/api/v1/me/").status_code == 401


def test_admin_own_password_change_goes_to_settings(operator_client):
    response = operator_client.get("/admin/password_change/")
    assert response.status_code == 302
    assert response.url == "/settings/"
