"""Registration, tokens, rotation, reuse detection, logout and tampered tokens."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import DeviceSession, User
from accounts.services import REFRESH_REUSE_GRACE
from conftest import PASSWORD, make_user, needs_concurrent_db, run_concurrently

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
ME = "/api/v1/me/"


def login(client: APIClient, email: str, password: str = PASSWORD, **extra):
    return client.post(TOKEN, {"email": email, "password": password}, format="json", **extra)


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


# --- register -----------------------------------------------------------------------------------


def test_register_creates_unverified_trader_and_sends_verification(
    anon_api, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = anon_api.post(
            "/api/v1/auth/register/",
            {"email": "Carol@Example.COM", "password": "a-long-enough-pass-42", "display_name": "Carol"},
            format="json",
        )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "carol@example.com"
    assert body["role"] == "trader"
    assert body["email_verified"] is False
    assert "password" not in body
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["carol@example.com"]
    assert "/verify-email/?token=" in mailoutbox[0].body


def test_register_weak_password_is_400_with_errors_password(anon_api):
    response = anon_api.post(
        "/api/v1/auth/register/", {"email": "d@example.com", "password": "12345678"}, format="json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert "password" in body["errors"]
    assert body["status"] == 400
    assert not User.objects.filter(email="d@example.com").exists()


def test_register_password_similar_to_email_is_rejected(anon_api):
    response = anon_api.post(
        "/api/v1/auth/register/",
        {"email": "margaret.hamilton@example.com", "password": "margaret.hamilton"},
        format="json",
    )
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


def test_register_duplicate_email_case_insensitive(anon_api, alice):
    response = anon_api.post(
        "/api/v1/auth/register/", {"email": "ALICE@example.com", "password": "another-good-pass-77"}, format="json"
    )
    assert response.status_code == 400
    assert "email" in response.json()["errors"]
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_register_bad_email_and_missing_fields(anon_api):
    response = anon_api.post("/api/v1/auth/register/", {"email": "not-an-email"}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"email", "password"}


def test_register_ignores_role(anon_api):
    response = anon_api.post(
        "/api/v1/auth/register/",
        {"email": "eve@example.com", "password": "a-long-enough-pass-42", "role": "admin"},
        format="json",
    )
    assert response.status_code == 201
    eve = User.objects.get(email="eve@example.com")
    assert eve.role == User.Role.TRADER
    assert eve.is_staff is False


# --- token ------------------------------------------------------------------------------------


def test_token_pair_for_case_insensitive_email(anon_api, alice):
    response = login(anon_api, "ALICE@EXAMPLE.COM", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")
    assert response.status_code == 200
    body = response.json()
    access = AccessToken(body["access"])
    refresh = RefreshToken(body["refresh"])
    assert access["sid"] == refresh["sid"]
    session = DeviceSession.objects.get(pk=access["sid"])
    assert session.user == alice
    assert session.refresh_jti == refresh["jti"]
    assert session.ip == "127.0.0.1"
    assert session.device == "Firefox on Linux"
    lifetime = access["exp"] - access["iat"]
    assert lifetime == 15 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("email", "password"), [("alice@example.com", "wrong-password"), ("nobody@example.com", PASSWORD)]
)
def test_token_wrong_credentials_401(anon_api, alice, email, password):
    response = login(anon_api, email, password)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "Email or password is not correct."
    assert not DeviceSession.objects.exists()


def test_token_inactive_user_401(anon_api, alice):
    alice.is_active = False
    alice.save()
    assert login(anon_api, "alice@example.com").status_code == 401


def test_token_missing_fields_400(anon_api):
    response = anon_api.post(TOKEN, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"email", "password"}


def test_unverified_account_may_log_in(anon_api):
    make_user("frank@example.com")
    response = login(anon_api, "frank@example.com")
    assert response.status_code == 200
    me = bearer(response.json()["access"]).get(ME).json()
    assert me["email_verified"] is False


# --- refresh rotation and reuse ------------------------------------------------------------------


def test_refresh_rotates_and_old_token_is_rejected(anon_api, alice):
    first = login(anon_api, "alice@example.com").json()
    rotated = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh"] != first["refresh"]
    assert bearer(second["access"]).get(ME).status_code == 200

    reused = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401


def test_reuse_of_rotated_refresh_revokes_the_whole_session(anon_api, alice, monkeypatch):
    first = login(anon_api, "alice@example.com").json()
    second = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").json()

    later = timezone.now() + REFRESH_REUSE_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)  # past a lost race's grace
    assert anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").status_code == 401

    # the thief's replay killed the family: the legitimate new tokens die too
    assert anon_api.post(REFRESH, {"refresh": second["refresh"]}, format="json").status_code == 401
    assert bearer(second["access"]).get(ME).status_code == 401
    session = DeviceSession.objects.get()
    assert session.revoked_reason == "refresh token reuse"


def test_refresh_of_expired_session_401(anon_api, alice):
    first = login(anon_api, "alice@example.com").json()
    DeviceSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").status_code == 401


def test_refresh_with_access_token_401(anon_api, alice):
    first = login(anon_api, "alice@example.com").json()
    assert anon_api.post(REFRESH, {"refresh": first["access"]}, format="json").status_code == 401


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_refreshes_of_one_token_give_exactly_one_success(alice):
    tokens = login(APIClient(), "alice@example.com").json()

    def refresh(index: int) -> int:
        return APIClient().post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code

    statuses = run_concurrently(20, refresh)
    assert len(statuses) == 20
    assert statuses.count(200) == 1
    assert statuses.count(401) == 19


# --- logout -----------------------------------------------------------------------------------


def test_logout_kills_refresh_and_access(anon_api, alice):
    tokens = login(anon_api, "alice@example.com").json()
    assert bearer(tokens["access"]).get(ME).status_code == 200
    response = anon_api.post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 204
    assert response.content == b""
    assert anon_api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401
    assert bearer(tokens["access"]).get(ME).status_code == 401


def test_logout_with_garbage_401(anon_api):
    assert anon_api.post("/api/v1/auth/logout/", {"refresh": "garbage"}, format="json").status_code == 401


def test_logout_only_ends_that_session(anon_api, alice):
    laptop = login(anon_api, "alice@example.com").json()
    phone = login(anon_api, "alice@example.com").json()
    anon_api.post("/api/v1/auth/logout/", {"refresh": laptop["refresh"]}, format="json")
    assert bearer(phone["access"]).get(ME).status_code == 200


# --- tampered tokens ------------------------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered_tokens(access: str, refresh: str) -> dict[str, str]:
    claims = jwt.decode(access, options={"verify_signature": False})
    header, payload, signature = access.split(".")
    expired = dict(claims, exp=int((timezone.now() - timedelta(minutes=1)).timestamp()))
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong signature": jwt.encode(claims, "not-the-secret-key-but-long-enough-000", algorithm="HS256"),
        "edited payload": f"{header}.{_b64(dict(claims, user_id='999'))}.{signature}",
        "expired": jwt.encode(expired, settings.SECRET_KEY, algorithm="HS256"),
        "refresh as access": refresh,
        "garbage": "not.a.jwt",
        "no session claim": jwt.encode(
            {k: v for k, v in claims.items() if k != "sid"}, settings.SECRET_KEY, algorithm="HS256"
        ),
    }


@pytest.mark.parametrize(
    "kind",
    ["alg none", "wrong signature", "edited payload", "expired", "refresh as access", "garbage", "no session claim"],
)
def test_tampered_access_tokens_are_401(anon_api, alice, kind):
    tokens = login(anon_api, "alice@example.com").json()
    bad = _tampered_tokens(tokens["access"], tokens["refresh"])[kind]
    response = bearer(bad).get(ME)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401


def test_missing_credentials_401_with_www_authenticate(anon_api):
    response = anon_api.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_deactivated_user_access_token_stops_working(alice_api, alice):
    from accounts.services import deactivate_user

    assert alice_api.get(ME).status_code == 200
    deactivate_user(user=alice)
    assert alice_api.get(ME).status_code == 401
    assert not DeviceSession.objects.filter(user=alice, revoked_at__isnull=True).exists()


def test_access_token_check_is_cached_once_warm(alice_api, django_assert_num_queries):
    assert alice_api.get(ME).status_code == 200  # warms the session flag and the user row
    with django_assert_num_queries(0):
        assert alice_api.get(ME).status_code == 200


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_leave_the_winner_with_working_tokens(alice):
    tokens = login(APIClient(), "alice@example.com").json()

    def refresh(index: int):
        return APIClient().post(REFRESH, {"refresh": tokens["refresh"]}, format="json")

    responses = run_concurrently(20, refresh)
    winners = [response for response in responses if response.status_code == 200]
    assert [response.status_code for response in responses].count(401) == 19
    assert len(winners) == 1
    won = winners[0].json()
    assert bearer(won["access"]).get(ME).status_code == 200
    again = APIClient().post(REFRESH, {"refresh": won["refresh"]}, format="json")
    assert again.status_code == 200
    assert bearer(again.json()["access"]).get(ME).status_code == 200
    assert DeviceSession.objects.get().revoked_at is None


def test_a_race_loser_within_the_grace_window_does_not_end_the_session(anon_api, alice):
    first = login(anon_api, "alice@example.com").json()
    second = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").json()
    lost = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert lost.status_code == 401
    assert bearer(second["access"]).get(ME).status_code == 200
    assert anon_api.post(REFRESH, {"refresh": second["refresh"]}, format="json").status_code == 200
    assert DeviceSession.objects.get().revoked_at is None


def test_reuse_after_the_grace_window_still_ends_the_session(anon_api, alice, monkeypatch):
    first = login(anon_api, "alice@example.com").json()
    second = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").json()
    later = timezone.now() + REFRESH_REUSE_GRACE + timedelta(seconds=1)
    monkeypatch.setattr("django.utils.timezone.now", lambda: later)
    assert anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").status_code == 401
    assert anon_api.post(REFRESH, {"refresh": second["refresh"]}, format="json").status_code == 401
    assert bearer(second["access"]).get(ME).status_code == 401
    assert DeviceSession.objects.get().revoked_reason == "refresh token reuse"


def test_an_older_token_than_the_previous_one_ends_the_session_at_once(anon_api, alice):
    first = login(anon_api, "alice@example.com").json()
    second = anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").json()
    third = anon_api.post(REFRESH, {"refresh": second["refresh"]}, format="json").json()
    assert anon_api.post(REFRESH, {"refresh": first["refresh"]}, format="json").status_code == 401
    assert anon_api.post(REFRESH, {"refresh": third["refresh"]}, format="json").status_code == 401
    assert DeviceSession.objects.get().revoked_reason == "refresh token reuse"
