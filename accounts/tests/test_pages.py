"""Browser pages: forms with errors beside fields, post/redirect/get, sessions revocable from settings."""

import re

import pytest
from django.urls import reverse

from accounts.models import DeviceSession, User
from accounts.tokens import make_email_verification_token, make_password_reset_token
from conftest import PASSWORD, api_for, make_user

pytestmark = pytest.mark.django_db


def field_errors(response, name: str) -> list[str]:
    html = response.content.decode()
    return re.findall(rf'data-field-error="{name}">([^<]+)<', html)


def log_in(client, email: str = "alice@example.com", password: str = PASSWORD):
    return client.post("/login/", {"email": email, "password": password})


def test_home_redirects_to_login_or_dashboard(client, alice):
    assert client.get("/").url == "/login/"
    log_in(client)
    assert client.get("/").url == "/dashboard/"


def test_dashboard_requires_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")


def test_login_creates_a_browser_device_session(client, alice):
    response = client.post(
        "/login/?next=/settings/", {"email": "ALICE@example.com", "password": PASSWORD}, HTTP_USER_AGENT="Mozilla/5.0"
    )
    assert response.status_code == 302
    assert response.url == "/settings/"
    session = DeviceSession.objects.get(user=alice)
    assert session.kind == DeviceSession.Kind.BROWSER
    assert session.browser_session_key == client.session.session_key
    assert client.session["device_session_id"] == str(session.pk)


def test_login_ignores_offsite_next(client, alice):
    response = client.post("/login/?next=//evil.example/", {"email": "alice@example.com", "password": PASSWORD})
    assert response.url == "/dashboard/"


def test_login_wrong_password_shows_error(client, alice):
    response = log_in(client, password="nope")
    assert response.status_code == 200
    assert "Email or password is not correct." in response.content.decode()
    assert not DeviceSession.objects.exists()


def test_login_bad_email_error_beside_field(client):
    response = client.post("/login/", {"email": "not-an-email", "password": "x"})
    assert field_errors(response, "email") == ["Enter a valid email address."]


def test_register_errors_beside_fields(client, alice):
    response = client.post("/register/", {"email": "alice@example.com", "password": "123"})
    assert response.status_code == 200
    assert field_errors(response, "email") == ["An account with this email address already exists."]
    assert "This password is too short. It must contain at least 8 characters." in field_errors(response, "password")
    assert User.objects.count() == 1


def test_register_logs_in_and_sends_verification(client, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/register/", {"email": "new@example.com", "password": "a-long-enough-pass-42"})
    assert response.url == "/dashboard/"
    assert len(mailoutbox) == 1
    page = client.get("/dashboard/")
    assert "Please confirm new@example.com" in page.content.decode()


def test_verify_email_page_confirms_on_post_only(client):
    frank = make_user("frank@example.com")
    token = make_email_verification_token(frank)
    page = client.get(f"/verify-email/?token={token}")
    assert page.status_code == 200
    frank.refresh_from_db()
    assert frank.email_verified is False  # a link scanner's GET changes nothing
    response = client.post("/verify-email/", {"token": token})
    assert response.url == "/login/"
    frank.refresh_from_db()
    assert frank.email_verified is True
    again = client.post("/verify-email/", {"token": token}, follow=True)
    assert "already been used" in again.content.decode()


def test_password_forgot_and_reset_pages(client, alice, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/password/forgot/", {"email": "alice@example.com"})
    assert response.url == "/login/"
    link = re.search(r"http://testserver(/password/reset/\S+/)", mailoutbox[0].body).group(1)
    weak = client.post(link, {"new_password": "123"})
    assert weak.status_code == 200
    assert field_errors(weak, "new_password")
    done = client.post(link, {"new_password": "a-brand-new-pass-99"})
    assert done.url == "/login/"
    assert client.get(link).status_code == 400  # single use
    assert log_in(client, password="a-brand-new-pass-99").url == "/dashboard/"


def test_password_reset_page_rejects_bad_link(client, alice):
    uid, _ = make_password_reset_token(alice)
    response = client.get(f"/password/reset/{uid}/not-a-token/")
    assert response.status_code == 400
    assert "invalid, expired or already used" in response.content.decode()


def test_settings_profile_errors_beside_fields_and_save(client, alice):
    log_in(client)
    bad = client.post(
        "/settings/profile/", {"email": "alice@example.com", "timezone": "Nowhere/Land", "base_currency": "usd"}
    )
    assert bad.status_code == 400
    assert field_errors(bad, "timezone")
    good = client.post(
        "/settings/profile/",
        {"email": "alice@example.com", "display_name": "Al", "timezone": "Asia/Tokyo", "base_currency": "jpy"},
    )
    assert good.url == "/settings/"
    alice.refresh_from_db()
    assert (alice.display_name, alice.timezone, alice.base_currency) == ("Al", "Asia/Tokyo", "jpy")


def test_settings_password_change_keeps_this_browser(client, alice):
    log_in(client)
    phone = api_for(alice)
    wrong = client.post("/settings/password/", {"old_password": "nope", "new_password": "another-secret-2026"})
    assert field_errors(wrong, "old_password") == ["Your current password is not correct."]
    response = client.post("/settings/password/", {"old_password": PASSWORD, "new_password": "another-secret-2026"})
    assert response.url == "/settings/"
    assert client.get("/settings/").status_code == 200
    assert phone.get("/api/v1/me/").status_code == 401


def test_settings_lists_sessions_and_revokes_another(client, alice, bob):
    log_in(client)
    phone = api_for(
        alice, user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
    )
    bobs = api_for(bob)
    page = client.get("/settings/").content.decode()
    assert f'data-session-id="{phone.tokens.session.pk}"' in page
    assert f'data-session-id="{bobs.tokens.session.pk}"' not in page
    assert "This device" in page

    # bob's session is not alice's to revoke: nothing happens to it
    client.post(reverse("accounts:session-revoke", args=[bobs.tokens.session.pk]))
    assert bobs.get("/api/v1/me/").status_code == 200

    response = client.post(reverse("accounts:session-revoke", args=[phone.tokens.session.pk]))
    assert response.url == "/settings/"
    assert phone.get("/api/v1/me/").status_code == 401
    assert f'data-session-id="{phone.tokens.session.pk}"' not in client.get("/settings/").content.decode()


def test_revoking_a_browser_session_logs_that_browser_out(client, alice):
    from django.test import Client

    other_browser = Client()
    log_in(other_browser)
    log_in(client)
    other_id = other_browser.session["device_session_id"]
    client.post(reverse("accounts:session-revoke", args=[other_id]))
    response = other_browser.get("/dashboard/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_revoke_other_sessions_page(client, alice):
    log_in(client)
    api_for(alice), api_for(alice)
    response = client.post("/settings/sessions/revoke-others/", follow=True)
    assert "Logged out 2 other sessions." in response.content.decode()
    assert DeviceSession.objects.filter(user=alice, revoked_at__isnull=True).count() == 1


def test_logout_is_post_only_and_revokes_the_session(client, alice):
    log_in(client)
    session_id = client.session["device_session_id"]
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.url == "/login/"
    assert DeviceSession.objects.get(pk=session_id).revoked_at is not None
    assert client.get("/dashboard/").status_code == 302


def test_security_headers_on_pages(client):
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "<script>" not in response.content.decode()  # no inline script anywhere


def test_cors_only_for_configured_origins(anon_api):
    allowed = anon_api.options(
        "/api/v1/auth/token/", HTTP_ORIGIN="http://localhost:8000", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:8000"
    denied = anon_api.options(
        "/api/v1/auth/token/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in denied


def test_session_cookie_auth_works_for_the_api_with_csrf(alice):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.get("/login/")
    token = browser.cookies["csrftoken"].value
    browser.post("/login/", {"email": "alice@example.com", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert browser.get("/api/v1/me/").json()["email"] == "alice@example.com"
    # a write without the CSRF header is refused
    assert browser.patch("/api/v1/me/", {"display_name": "x"}, content_type="application/json").status_code == 403
    ok = browser.patch(
        "/api/v1/me/",
        {"display_name": "x"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert ok.status_code == 200


OFFSITE = ["https://evil.example/", "//evil.example", "/\\evil.example", "http:///evil.example", " //evil.example"]


@pytest.mark.parametrize("target", OFFSITE)
def test_resend_verification_never_redirects_offsite(client, target):
    make_user("frank@example.com")
    log_in(client, "frank@example.com")
    response = client.post("/verify-email/resend/", {"next": target})
    assert response.status_code == 302
    assert response.url == "/dashboard/"


def test_resend_verification_follows_a_local_next(client):
    make_user("frank@example.com")
    log_in(client, "frank@example.com")
    response = client.post("/verify-email/resend/", {"next": "/settings/"})
    assert response.url == "/settings/"


@pytest.mark.parametrize("target", OFFSITE)
def test_login_never_redirects_offsite(client, alice, target):
    response = client.post(f"/login/?next={target}", {"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == "/dashboard/"


def test_settings_email_change_needs_the_current_password(client, alice, mailoutbox):
    log_in(client)
    form = {"email": "alice.new@example.com", "display_name": "", "timezone": "UTC", "base_currency": "usd"}
    response = client.post("/settings/profile/", form)
    assert response.status_code == 400
    assert field_errors(response, "current_password") == ["Enter your current password to change your email address."]
    wrong = client.post("/settings/profile/", {**form, "current_password": "nope"})
    assert field_errors(wrong, "current_password") == ["Your current password is not correct."]
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert mailoutbox == []


def test_settings_email_change_with_the_password(client, alice, mailoutbox, django_capture_on_commit_callbacks):
    log_in(client)
    form = {"email": "alice.new@example.com", "timezone": "UTC", "base_currency": "usd", "current_password": PASSWORD}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/settings/profile/", form)
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.email, alice.email_verified) == ("alice.new@example.com", False)
    assert sorted(message.to[0] for message in mailoutbox) == ["alice.new@example.com", "alice@example.com"]
