"""What operators see of a partial sync: the API's sync runs, the admin list, /health/ready and the schema."""

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from conftest import PASSWORD, api_for, make_user
from market.models import SyncRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def partial_run() -> SyncRun:
    now = timezone.now()
    return SyncRun.objects.create(
        kind=SyncRun.Kind.MARKETS,
        status=SyncRun.Status.PARTIAL,
        started_at=now,
        finished_at=now,
        coins_upserted=248,
        records_ok=248,
        records_skipped=2,
        skipped={"broken": "current_price is null", "#7": "id is missing"},
    )


def test_sync_runs_api_shows_partial_with_counts(partial_run):
    operator = api_for(make_user("ops@example.com", role="admin"))
    row = operator.get("/api/v1/market/sync-runs/").json()["results"][0]
    assert row["status"] == "partial"
    assert (row["records_ok"], row["records_skipped"]) == (248, 2)
    assert row["skipped"] == {"broken": "current_price is null", "#7": "id is missing"}


def test_admin_lists_partial_runs_with_their_counts(client, partial_run):
    make_user("ops@example.com", role="admin")
    client.post("/login/", {"email": "ops@example.com", "password": PASSWORD})
    page = client.get("/admin/market/syncrun/").content.decode()
    assert "Partial (some records skipped)" in page
    assert '<td class="field-records_ok">248</td>' in page
    assert '<td class="field-records_skipped">2</td>' in page
    filtered = client.get("/admin/market/syncrun/?status__exact=partial").content.decode()
    assert f"/admin/market/syncrun/{partial_run.pk}/change/" in filtered


def test_ready_reports_partial_market_data_without_a_503(client, partial_run):
    response = client.get("/health/ready")
    assert response.status_code == 200
    market_data = response.json()["checks"]["market_data"]
    assert market_data["ok"] is True
    assert (market_data["status"], market_data["skipped"]) == ("partial", 2)
    assert market_data["last_sync"] == partial_run.finished_at.isoformat().replace("+00:00", "Z")
    assert market_data["age_s"] >= 0


def test_ready_reports_an_empty_market(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    market_data = response.json()["checks"]["market_data"]
    assert (market_data["ok"], market_data["status"], market_data["last_sync"]) == (False, "empty", None)


def test_schema_enums_match_what_the_api_sends():
    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    assert "partial" in schemas["SyncRunStatusEnum"]["enum"]
    assert {"records_ok", "records_skipped"} <= set(schemas["SyncRun"]["properties"])
    global_stats = schemas["GlobalStats"]["properties"]
    assert global_stats["total_market_cap"]["nullable"] is True
    assert global_stats["as_of"]["nullable"] is True
    status_enum = global_stats["status"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]
    assert schemas[status_enum]["enum"] == ["ok", "empty"]
