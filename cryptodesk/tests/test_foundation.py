"""Entry points, owner scoping, log hygiene, JSON decimals."""

import importlib
import logging
from decimal import Decimal
from io import BytesIO

import pytest

from accounts.models import DeviceSession
from conftest import api_for
from cryptodesk.api.parsers import DecimalJSONParser
from cryptodesk.api.scoping import owner_scoped
from cryptodesk.logging import RedactSecretsFilter, redact


def test_entry_points_import():
    assert importlib.import_module("cryptodesk.wsgi").application is not None
    assert importlib.import_module("cryptodesk.asgi").application is not None
    from cryptodesk.celery import app

    assert app.main == "cryptodesk"
    app.loader.import_default_modules()  # what a worker does at start: autodiscovers every app's tasks
    assert "accounts.tasks.purge_expired_sessions_task" in app.tasks
    from django.conf import settings

    beat = settings.CELERY_BEAT_SCHEDULE["purge-expired-sessions"]
    assert beat["task"] == "accounts.tasks.purge_expired_sessions_task"


@pytest.mark.django_db
def test_owner_scoped_hides_other_users_rows_and_lets_operators_read(alice, bob):
    from accounts.models import User

    alice_session = api_for(alice).tokens.session
    bob_session = api_for(bob).tokens.session
    rows = DeviceSession.objects.all()
    assert list(owner_scoped(rows, alice, field="user")) == [alice_session]
    assert list(owner_scoped(rows, bob, field="user")) == [bob_session]
    operator = User.objects.create_superuser("ops@example.com", "an-operator-pass-1")
    assert set(owner_scoped(rows, operator, field="user")) == {alice_session, bob_session}
    assert list(owner_scoped(rows, operator, field="user", write=True)) == []


def test_json_numbers_parse_as_decimal_never_float():
    data = DecimalJSONParser().parse(BytesIO(b'{"quantity": 0.1, "price": 12345.123456789012345678}'))
    assert data["quantity"] == Decimal("0.1")
    assert isinstance(data["price"], Decimal)
    assert data["price"] == Decimal("12345.123456789012345678")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_json_rejects_non_numbers(constant):
    from rest_framework.exceptions import ParseError

    with pytest.raises(ParseError):
        DecimalJSONParser().parse(BytesIO(b'{"quantity": ' + constant + b"}"))


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('login body {"email": "a@b.c", "password": "hunter2-secret"}', "hunter2-secret"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("refresh=eyJ0eXAiOiJKV1QifQ.payload.signature&x=1", "eyJ0eXAiOiJKV1QifQ"),
    ],
)
def test_log_lines_never_carry_secrets(line, secret):
    assert secret not in redact(line)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (line,), None)
    RedactSecretsFilter().filter(record)
    assert secret not in record.getMessage()
    assert "[redacted]" in record.getMessage()


@pytest.mark.django_db
def test_failed_and_successful_logins_log_no_password_or_token(anon_api, alice, caplog):
    from conftest import PASSWORD

    with caplog.at_level(logging.DEBUG):
        anon_api.post("/api/v1/auth/token/", {"email": alice.email, "password": "wrong-pass-123"}, format="json")
        tokens = anon_api.post(
            "/api/v1/auth/token/", {"email": alice.email, "password": PASSWORD}, format="json"
        ).json()
    text = caplog.text
    assert "wrong-pass-123" not in text
    assert PASSWORD not in text
    assert tokens["access"] not in text
    assert tokens["refresh"] not in text


@pytest.mark.django_db
def test_ready_is_503_when_the_broker_is_down(client, monkeypatch):
    from cryptodesk import views

    def broken():
        raise ConnectionRefusedError("broker unreachable")

    monkeypatch.setattr(views, "_check_broker", broken)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == {"ok": False, "error": "ConnectionRefusedError"}
