"""Profile and device sessions: owner-only, never another user's."""

import pytest

from accounts.models import DeviceSession, User
from conftest import PASSWORD, api_for, make_user

pytestmark = pytest.mark.django_db

ME = "/api/v1/me/"
SESSIONS = "/api/v1/me/sessions/"


def test_me_returns_profile(alice_api):
    body = alice_api.get(ME).json()
    assert body["email"] == "alice@example.com"
    assert set(body) >= {"email", "display_name", "role", "base_currency", "timezone", "email_verified"}


def test_patch_profile(alice_api, alice):
    response = alice_api.patch(ME, {"display_name": "Alice L.", "timezone": "Europe/Paris", "base_currency": "eur"})
    assert response.status_code == 200
    alice.refresh_from_db()
    assert (alice.display_name, alice.timezone, alice.base_currency) == ("Alice L.", "Europe/Paris", "eur")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"base_currency": "doge"}, "base_currency"),
        ({"email": "x"}, "email"),
    ],
)
def test_patch_profile_bad_input(alice_api, alice, payload, field):
    response = alice_api.patch(ME, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    alice.refresh_from_db()
    assert alice.timezone == "UTC"
    assert alice.email == "alice@example.com"


def test_nobody_can_raise_their_own_role(alice_api, alice):
    response = alice_api.patch(ME, {"role": "admin", "is_staff": True, "email_verified": True}, format="json")
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.role == User.Role.TRADER
    assert alice.is_staff is False


def test_changing_email_requires_verification_again(alice_api, alice, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(ME, {"email": "Alice.New@Example.com", "current_password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert response.json()["email"] == "alice.new@example.com"
    assert response.json()["email_verified"] is False
    assert mailoutbox[0].to == ["alice.new@example.com"]


def test_changing_email_to_a_taken_one_is_400(alice_api, bob):
    response = alice_api.patch(ME, {"email": "BOB@example.com", "current_password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert "email" in response.json()["errors"]


def test_delete_me(alice_api, alice):
    assert alice_api.delete(ME).status_code == 204
    assert not User.objects.filter(pk=alice.pk).exists()
    assert alice_api.get(ME).status_code == 401


def test_sessions_list_shows_only_mine_and_marks_current(alice, bob):
    alice_laptop = api_for(alice, user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15")
    api_for(alice)
    bob_api = api_for(bob)
    body = alice_laptop.get(SESSIONS).json()
    assert body["count"] == 2
    ids = {row["id"] for row in body["results"]}
    assert ids == {str(pk) for pk in DeviceSession.objects.filter(user=alice).values_list("pk", flat=True)}
    current = [row for row in body["results"] if row["current"]]
    assert len(current) == 1
    assert current[0]["id"] == str(alice_laptop.tokens.session.pk)
    assert set(current[0]) >= {"device", "ip", "created", "last_used", "current"}
    assert bob_api.get(SESSIONS).json()["count"] == 1


def test_bob_cannot_revoke_alices_session(alice, bob):
    alice_api = api_for(alice)
    bob_api = api_for(bob)
    response = bob_api.delete(f"{SESSIONS}{alice_api.tokens.session.pk}/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert alice_api.get(ME).status_code == 200


def test_revoke_one_session(alice):
    laptop, phone = api_for(alice), api_for(alice)
    assert laptop.delete(f"{SESSIONS}{phone.tokens.session.pk}/").status_code == 204
    assert phone.get(ME).status_code == 401
    assert laptop.get(ME).status_code == 200
    assert laptop.delete(f"{SESSIONS}{phone.tokens.session.pk}/").status_code == 404


def test_revoke_all_but_current(alice, bob):
    current, other1, other2 = api_for(alice), api_for(alice), api_for(alice)
    bobs = api_for(bob)
    assert current.delete(SESSIONS).status_code == 204
    assert current.get(ME).status_code == 200
    assert other1.get(ME).status_code == 401
    assert other2.get(ME).status_code == 401
    assert bobs.get(ME).status_code == 200


def test_sessions_list_constant_queries(alice, django_assert_num_queries):
    client = api_for(alice)
    client.get(SESSIONS)  # warm
    for _ in range(10):
        api_for(alice)
    with django_assert_num_queries(2):  # count, page (the user and session come from the cache)
        assert client.get(SESSIONS).json()["count"] == 11


def test_cached_user_follows_every_change(alice_api, alice):
    from accounts.services import verify_email
    from accounts.tokens import make_email_verification_token

    alice.email_verified = False
    alice.save()
    assert alice_api.get(ME).json()["email_verified"] is False  # warms the cache
    verify_email(token=make_email_verification_token(alice))
    assert alice_api.get(ME).json()["email_verified"] is True
    alice_api.patch(ME, {"display_name": "Renamed"}, format="json")
    assert alice_api.get(ME).json()["display_name"] == "Renamed"
    User.objects.filter(pk=alice.pk).update(display_name="Behind the cache's back")
    alice.refresh_from_db()
    alice.role = User.Role.ANALYST
    alice.save()
    assert alice_api.get(ME).json()["role"] == "analyst"


@pytest.mark.parametrize("extra", [{}, {"current_password": ""}, {"current_password": "not-my-password"}])
def test_changing_email_needs_the_current_password(alice_api, alice, mailoutbox, extra):
    response = alice_api.patch(ME, {"email": "mallory@example.com", **extra}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "current_password" in response.json()["errors"]
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert alice.email_verified is True
    assert mailoutbox == []


def test_changing_email_notifies_the_old_address(alice_api, alice, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(ME, {"email": "alice.new@example.com", "current_password": PASSWORD}, format="json")
    assert response.status_code == 200
    by_address = {tuple(message.to): message for message in mailoutbox}
    assert set(by_address) == {("alice.new@example.com",), ("alice@example.com",)}
    assert "/verify-email/?token=" in by_address[("alice.new@example.com",)].body
    notice = by_address[("alice@example.com",)]
    assert "alice.new@example.com" in notice.body
    assert "token=" not in notice.body


def test_no_notice_to_an_old_address_that_was_never_confirmed(mailoutbox, django_capture_on_commit_callbacks):
    frank = make_user("frank@example.com")
    client = api_for(frank)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(ME, {"email": "frank2@example.com", "current_password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert [message.to for message in mailoutbox] == [["frank2@example.com"]]


def test_other_profile_changes_need_no_password(alice_api, alice, mailoutbox):
    response = alice_api.patch(ME, {"email": "ALICE@example.com", "display_name": "Al"}, format="json")
    assert response.status_code == 200
    alice.refresh_from_db()
    assert (alice.email, alice.display_name, alice.email_verified) == ("alice@example.com", "Al", True)
    assert mailoutbox == []
