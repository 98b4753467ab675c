"""Every API error is RFC 9457 problem details, whatever raised it."""

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from cryptodesk.api_urls import urlpatterns as api_patterns
from cryptodesk.urls import urlpatterns as root_patterns

pytestmark = pytest.mark.django_db

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.content.decode()
    return body


@api_view(["GET"])
@permission_classes([AllowAny])
def _explode(request):
    raise RuntimeError("database password is hunter2")


urlpatterns = [path("api/v1/explode/", _explode), *root_patterns]
urlpatterns.insert(0, path("api/v1/explode/", _explode))
del api_patterns


def test_unknown_api_path_is_problem_404(anon_api):
    assert_problem(anon_api.get("/api/v1/does-not-exist/"), 404)
    assert_problem(anon_api.get("/api/nothing-here"), 404)


def test_validation_error_has_errors_by_field(anon_api):
    body = assert_problem(anon_api.post("/api/v1/auth/token/", {"email": "x"}, format="json"), 400)
    assert body["errors"]["email"] == ["Enter a valid email address."]
    assert body["errors"]["password"] == ["This field is required."]


def test_malformed_json_is_400(anon_api):
    response = anon_api.post("/api/v1/auth/token/", data="{not json", content_type="application/json")
    assert "Malformed JSON" in assert_problem(response, 400)["detail"]


def test_method_not_allowed_is_405(alice_api):
    assert_problem(alice_api.put("/api/v1/me/sessions/", {}, format="json"), 405)


def test_unsupported_media_type_is_415(anon_api):
    response = anon_api.post("/api/v1/auth/token/", data="email=x", content_type="text/plain")
    assert_problem(response, 415)


def test_body_over_10_mb_is_413(anon_api):
    response = anon_api.generic(
        "POST",
        "/api/v1/auth/token/",
        data=b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(10 * 1024 * 1024 + 1),
    )
    assert_problem(response, 413)


def test_not_authenticated_is_401(anon_api):
    assert_problem(anon_api.get("/api/v1/me/"), 401)


def test_path_without_trailing_slash_is_served(anon_api, alice):
    from conftest import PASSWORD

    response = anon_api.post("/api/v1/auth/token", {"email": alice.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}


@override_settings(ROOT_URLCONF=__name__)
def test_unhandled_error_is_500_without_details(anon_api, caplog):
    body = assert_problem(anon_api.get("/api/v1/explode/"), 500)
    assert "hunter2" not in str(body)
    assert body["detail"] == "Something went wrong on our side. It has been logged."


@override_settings(DEBUG=False)
def test_django_404_under_api_is_problem_and_html_elsewhere(client):
    api = client.get("/api/v1/me/sessions/not-a-uuid/")
    assert_problem(api, 404)
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")
    assert b"Page not found" in page.content


def test_throttled_problem_has_retry_after(anon_api, alice):
    for _ in range(5):
        anon_api.post("/api/v1/auth/token/", {"email": alice.email, "password": "bad"}, format="json")
    response = anon_api.post("/api/v1/auth/token/", {"email": alice.email, "password": "bad"}, format="json")
    assert_problem(response, 429)
    assert int(response["Retry-After"]) >= 1
