"""Email verification and password reset tokens: single use, expiring; password change."""

import re
import smtplib

import pytest
from django.core.mail.backends.base import BaseEmailBackend
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


def test_resend_verification(mailoutbox, django_capture_on_commit_callbacks):
    frank = make_user("frank@example.com")
    client = api_for(frank)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/auth/verify-email/resend/")
    assert response.status_code == 202
    assert len(mailoutbox) == 1
    link_token = re.search(r"token=(\S+)", mailoutbox[0].body).group(1)
    assert client.post(VERIFY, {"token": link_token}, format="json").status_code == 200
    assert client.post("/api/v1/auth/verify-email/resend/").status_code == 409


def test_resend_requires_auth(anon_api):
    assert anon_api.post("/api/v1/auth/verify-email/resend/").status_code == 401


def test_forgot_password_answers_the_same_whether_or_not_the_account_exists(
    anon_api, alice, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
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


def test_reset_password_is_single_use_and_ends_every_session(
    anon_api, alice, mailoutbox, django_capture_on_commit_callbacks
):
    other_device = api_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
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


def test_wrong_current_passwords_are_throttled_like_logins(alice_api, alice):
    """A stolen session cannot guess the password through the re-authentication of a sensitive change."""
    wrong = {"old_password": "nope", "new_password": "changed-secret-2026"}
    answers = [alice_api.post("/api/v1/auth/password/change/", wrong, format="json") for _ in range(5)]
    assert [response.status_code for response in answers] == [400] * 5
    email_change = {"email": "alice.new@example.com", "current_password": "still-wrong"}
    refused = alice_api.patch("/api/v1/me/", email_change, format="json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    # even the right password waits for the window: the guesser cannot tell a right one from a wrong one
    right = {"old_password": PASSWORD, "new_password": "changed-secret-2026"}
    assert alice_api.post("/api/v1/auth/password/change/", right, format="json").status_code == 429
    assert User.objects.get(pk=alice.pk).check_password(PASSWORD)


# --- mail delivery: queued, retried, never a 500 ---------------------------------------------------


class SmtpDownBackend(BaseEmailBackend):
    """An SMTP server that refuses every message."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


SMTP_DOWN = "accounts.tests.test_email_and_passwords.SmtpDownBackend"


@override_settings(EMAIL_BACKEND=SMTP_DOWN)
def test_registration_during_an_smtp_outage_is_still_201(anon_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = anon_api.post(
            "/api/v1/auth/register/", {"email": "carol@example.com", "password": "a-long-enough-pass-42"}, format="json"
        )
    assert response.status_code == 201
    assert User.objects.filter(email="carol@example.com").exists()


@override_settings(EMAIL_BACKEND=SMTP_DOWN)
def test_forgot_password_during_an_smtp_outage_answers_the_same_for_known_and_unknown(
    anon_api, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        known = anon_api.post("/api/v1/auth/password/forgot/", {"email": "alice@example.com"}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        unknown = anon_api.post("/api/v1/auth/password/forgot/", {"email": "ghost@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content


@override_settings(EMAIL_BACKEND=SMTP_DOWN)
def test_register_page_during_an_smtp_outage_still_logs_in(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/register/", {"email": "new@example.com", "password": "a-long-enough-pass-42"})
    assert response.status_code == 302
    assert response.url == "/dashboard/"


@override_settings(EMAIL_BACKEND=SMTP_DOWN)
@pytest.mark.parametrize("error", [smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError("refused")])
def test_a_worker_retries_a_failed_send_later(monkeypatch, error):
    from celery.exceptions import Retry

    from accounts.tasks import send_email_task

    monkeypatch.setattr(SmtpDownBackend, "send_messages", lambda self, messages: (_ for _ in ()).throw(error))
    send_email_task.push_request(is_eager=False, retries=0)
    retried = []

    def retry(*args, **kwargs):
        retried.append(kwargs.get("exc"))
        raise Retry("later")

    monkeypatch.setattr(send_email_task, "retry", retry)
    try:
        with pytest.raises(Retry):
            send_email_task(to="alice@example.com", subject="Hello", body="Hi")
    finally:
        send_email_task.pop_request()
    assert retried == [error]


def test_the_mail_is_sent_after_commit_by_the_task(anon_api, alice, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        anon_api.post("/api/v1/auth/password/forgot/", {"email": "alice@example.com"}, format="json")
    assert mailoutbox == []
    for callback in callbacks:
        callback()
    assert [message.to for message in mailoutbox] == [["alice@example.com"]]


# --- unconfirmed addresses and resends ------------------------------------------------------------


def test_no_reset_mail_to_an_unconfirmed_address(anon_api, mailoutbox, django_capture_on_commit_callbacks):
    make_user("frank@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = anon_api.post("/api/v1/auth/password/forgot/", {"email": "frank@example.com"}, format="json")
    assert response.status_code == 202
    assert mailoutbox == []


def test_resends_are_limited_per_account(mailoutbox, django_capture_on_commit_callbacks):
    frank = make_user("frank@example.com")
    laptop, phone = api_for(frank), api_for(frank)
    for client in (laptop, phone, laptop):
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post("/api/v1/auth/verify-email/resend/").status_code == 202
    refused = phone.post("/api/v1/auth/verify-email/resend/")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert len(mailoutbox) == 3


def test_resend_limit_on_the_page_is_a_message(client, mailoutbox, django_capture_on_commit_callbacks):
    make_user("frank@example.com")
    client.post("/login/", {"email": "frank@example.com", "password": PASSWORD})
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/verify-email/resend/", {"next": "/settings/"})
    page = client.post("/verify-email/resend/", {"next": "/settings/"}, follow=True)
    assert page.status_code == 200
    assert "Too many confirmation emails" in page.content.decode()
    assert len(mailoutbox) == 3
