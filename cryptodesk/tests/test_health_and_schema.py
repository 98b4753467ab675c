"""Health probes, the OpenAPI schema and its docs pages."""

import pytest
import yaml
from django.core.management import call_command
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_each_check(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    for name in ("database", "cache", "broker"):
        assert body["checks"][name]["ok"] is True
        assert body["checks"][name]["latency_ms"] >= 0
    assert set(body["checks"]["market_data"]) >= {"ok", "last_sync", "age_s"}


def test_ready_is_503_when_the_database_is_down(client, monkeypatch):
    from cryptodesk import views

    def broken():
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "_check_database", broken)
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert body["checks"]["cache"]["ok"] is True


def test_ready_is_503_when_the_cache_is_down(client, monkeypatch):
    from cryptodesk import views

    def broken():
        raise ConnectionError("redis unreachable")

    monkeypatch.setattr(views, "_check_cache", broken)
    assert client.get("/health/ready").status_code == 503


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    paths = schema["paths"]
    assert "/api/v1/auth/register/" in paths
    assert paths["/api/v1/auth/register/"]["post"]["responses"]["201"]
    assert "204" in paths["/api/v1/auth/logout/"]["post"]["responses"]
    assert "content" not in paths["/api/v1/auth/logout/"]["post"]["responses"]["204"]
    assert "202" in paths["/api/v1/auth/password/forgot/"]["post"]["responses"]
    sessions = paths["/api/v1/me/sessions/"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    paginated = schema["components"]["schemas"][sessions["$ref"].rsplit("/", 1)[-1]]
    assert set(paginated["properties"]) == {"count", "next", "previous", "results"}
    assert "Problem" in schema["components"]["schemas"]
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    # request and response components are separate: read-only fields are never required in a request
    assert "UserRequest" not in schema["components"]["schemas"] or "id" not in schema["components"]["schemas"][
        "UserRequest"
    ].get("required", [])


def test_docs_pages_use_local_assets(client):
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "cdn." not in html
        assert "unpkg" not in html
        assert "jsdelivr" not in html
    assert client.get("/api/schema/").status_code == 200
