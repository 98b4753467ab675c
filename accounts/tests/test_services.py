"""Account services speak in domain errors; the API and the pages translate them."""

import pytest
from rest_framework.exceptions import ValidationError

from accounts import services
from conftest import PASSWORD
from cryptodesk.errors import DomainError, FieldErrors

pytestmark = pytest.mark.django_db


def test_registration_reports_every_field_at_once_as_a_domain_error(alice):
    with pytest.raises(FieldErrors) as caught:
        services.register_user(email="ALICE@example.com", password="12345678", base_url="http://testserver/")
    assert not isinstance(caught.value, ValidationError)
    assert set(caught.value.errors) == {"email", "password"}
    assert caught.value.errors["email"] == ["An account with this email address already exists."]
    assert caught.value.status == 400


def test_weak_new_password_is_a_domain_error_on_its_field(alice):
    with pytest.raises(DomainError) as caught:
        services.reset_password(user=alice, new_password="abc")
    assert not isinstance(caught.value, ValidationError)
    assert caught.value.field == "new_password"


def test_wrong_old_password_is_a_domain_error_on_its_field(alice):
    with pytest.raises(DomainError) as caught:
        services.change_password(user=alice, old_password="nope", new_password="changed-secret-2026")
    assert caught.value.field == "old_password"
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_taken_email_on_profile_update_is_a_domain_error(alice, bob):
    with pytest.raises(DomainError) as caught:
        services.update_profile(
            user=alice, base_url="http://testserver/", email="BOB@example.com", current_password=PASSWORD
        )
    assert caught.value.field == "email"
