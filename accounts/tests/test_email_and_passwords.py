"""Email verification and password reset tokens: single use, expiring; password change."""

import re

import pytest
from django.test import override_settings

from accounts.models import DeviceSession, User
from accounts.tokens import make_email_verification_token, make_password_reset_token
from conftest import PASSWORD, api_for, make_user

pytestmark = pytest.mark.django_db

VERIFY = "/api/v1/auth/verify-email/"


def test_verify_email_is_single_use(anon_api):
    frank = make_user("frank@example.com")
    token = make_email_verification_token(frank)
    first = anon_api.post(VERIFY, {"token": token}, format="json")
    assert first.status_code == 200
    assert first.json()["email_verified"] is True
    frank.refresh_from_db()
    assert frank.email_verified is True
    second = anon_api.post(VERIFY, {"token": token}, format="json")
    assert second.status_code == 400
    assert "token" in second.json()["errors"]


@override_settings(EMAIL_VERIFICATION_TIMEOUT=-1)
def test_verify_email_token_expires(anon_api):
    frank = make_user("frank@example.com")
    response = anon_api.post(VERIFY, {"token": make_email_verification_token(frank)}, format="json")
    assert response.status_code == 400
    frank.refresh_from_db()
    assert frank.email_verified is False


@pytest.mark.parametrize("token", ["", "garbage", "a" * 600])
def test_verify_email_rejects_bad_tokens(anon_api, token):
    assert anon_api.post(VERIFY, {"token": token}, format="json").status_code == 400


def test_verify_token_for_old_address_dies_when_email_changes(anon_api):
    frank = make_user("frank@example.com")
    token = make_email_verification_token(frank)
    frank.email = "frank2@example.com"
    frank.save()
    assert anon_api.post(VERIFY, {"token": token}, format="json").status_code == 400


def test_resend_verification(mailoutbox):
    frank = make_user("frank@example.com")
    client = api_for(frank)
    response = client.post("/api/v1/auth/verify-email/resend/")
    assert response.status_code == 202
    assert len(mailoutbox) == 1
    link_token = re.search(r"token=(\S+)", mailoutbox[0].body).group(1)
    assert client.post(VERIFY, {"token": link_token}, format="json").status_code == 200
    assert client.post("/api/v1/auth/verify-email/resend/").status_code == 409


def test_resend_requires_auth(anon_api):
    assert anon_api.post("/api/v1/auth/verify-email/resend/").status_code == 401


def test_forgot_password_answers_the_same_whether_or_not_the_account_exists(anon_api, alice, mailoutbox):
    known = anon_api.post("/api/v1/auth/password/forgot/", {"email": "alice@example.com"}, format="json")
    unknown = anon_api.post("/api/v1/auth/password/forgot/", {"email": "ghost@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]


def test_forgot_password_bad_email_400(anon_api):
    response = anon_api.post("/api/v1/auth/password/forgot/", {"email": "nope"}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]


def test_reset_password_is_single_use_and_ends_every_session(anon_api, alice, mailoutbox):
    other_device = api_for(alice)
    anon_api.post("/api/v1/auth/password/forgot/", {"email": "alice@example.com"}, format="json")
    uid, token = re.search(r'uid "(\S+)" and token "(\S+)"', mailoutbox[0].body).groups()
    payload = {"uid": uid, "token": token, "new_password": "brand-new-secret-2026"}
    assert anon_api.post("/api/v1/auth/password/reset/", payload, format="json").status_code == 200
    alice.refresh_from_db()
    assert alice.check_password("brand-new-secret-2026")
    assert other_device.get("/api/v1/me/").status_code == 401
    again = dict(payload, new_password="yet-another-secret-2027")
    response = anon_api.post("/api/v1/auth/password/reset/", again, format="json")
    assert response.status_code == 400
    assert "token" in response.json()["errors"]


def test_reset_password_weak_password_400_and_token_still_valid(anon_api, alice):
    uid, token = make_password_reset_token(alice)
    weak = anon_api.post(
        "/api/v1/auth/password/reset/", {"uid": uid, "token": token, "new_password": "abc"}, format="json"
    )
    assert weak.status_code == 400
    assert "new_password" in weak.json()["errors"]
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


@override_settings(PASSWORD_RESET_TIMEOUT=-1)
def test_reset_password_token_expires(anon_api, alice):
    uid, token = make_password_reset_token(alice)
    payload = {"uid": uid, "token": token, "new_password": "brand-new-secret-2026"}
    assert anon_api.post("/api/v1/auth/password/reset/", payload, format="json").status_code == 400


def test_change_password_keeps_current_session_ends_others(alice):
    current, other = api_for(alice), api_for(alice)
    response = current.post(
        "/api/v1/auth/password/change/",
        {"old_password": PASSWORD, "new_password": "changed-secret-2026"},
        format="json",
    )
    assert response.status_code == 200
    assert current.get("/api/v1/me/").status_code == 200
    assert other.get("/api/v1/me/").status_code == 401
    assert User.objects.get(pk=alice.pk).check_password("changed-secret-2026")


def test_change_password_wrong_old_password(alice_api, alice):
    response = alice_api.post(
        "/api/v1/auth/password/change/", {"old_password": "nope", "new_password": "changed-secret-2026"}, format="json"
    )
    assert response.status_code == 400
    assert "old_password" in response.json()["errors"]
    assert DeviceSession.objects.filter(user=alice, revoked_at__isnull=True).count() == 1
