"""Strategies over the API: kinds, validation, publishing rights, clones, backtests end to end."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import api_for, make_user
from market.demo.snapshot import load_snapshot
from strategies.models import Backtest, Strategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(db):
    load_snapshot()


@pytest.fixture
def analyst_api(market):
    return api_for(make_user("ana@example.com", role="analyst"))


@pytest.fixture
def run_backtest(django_capture_on_commit_callbacks):
    """POST a backtest; the task queued when its row commits runs before this returns (tasks are eager here)."""

    def post(client, strategy_id, payload):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/strategies/{strategy_id}/backtests/", payload, format="json")
        assert response.status_code == 202, response.content
        return client.get(f"/api/v1/backtests/{response.json()['id']}/").json()

    return post


def create(client, **changes):
    body = {
        "name": "Golden cross",
        "kind": "sma_crossover",
        "params": {"fast": 10, "slow": 30},
        "coin": "bitcoin",
        **changes,
    }
    return client.post("/api/v1/strategies/", body, format="json")


def test_kinds_catalogue(alice_api):
    kinds = {row["kind"]: row for row in alice_api.get("/api/v1/strategy-kinds/").json()}
    assert set(kinds) == {"sma_crossover", "ema_crossover", "rsi_reversion", "breakout", "dca"}
    fast = kinds["sma_crossover"]["params"][0]
    assert (fast["name"], fast["type"], fast["default"], fast["minimum"]) == ("fast", "integer", 20, 2)
    assert kinds["dca"]["params"][0]["type"] == "decimal"


def test_create_fills_defaults_and_stores_clean_params(alice_api, market):
    response = create(alice_api, kind="rsi_reversion", params={"period": 10})
    assert response.status_code == 201
    body = response.json()
    assert body["params"] == {"period": 10, "lower": "30", "upper": "70"}
    assert body["visibility"] == "private"
    assert body["is_mine"] is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"params": {"fast": 30, "slow": 10}}, "params.fast"),
        ({"params": {"fast": 10, "slow": 30, "speed": 1}}, "params.speed"),
        ({"params": {"fast": 1}}, "params.fast"),
        ({"kind": "martingale"}, "kind"),
        ({"timeframe": "5m"}, "timeframe"),
        ({"coin": "nocoin"}, "coin"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_input_names_the_field(alice_api, market, changes, field):
    response = create(alice_api, **changes)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Strategy.objects.exists()


def test_traders_cannot_publish_analysts_can(alice_api, analyst_api):
    refused = create(alice_api, visibility="published")
    assert refused.status_code == 403
    assert not Strategy.objects.exists()
    mine = create(alice_api).json()
    assert (
        alice_api.patch(f"/api/v1/strategies/{mine['id']}/", {"visibility": "published"}, format="json").status_code
        == 403
    )
    assert create(analyst_api, visibility="published").status_code == 201


def test_published_strategies_are_readable_and_clonable_not_writable(alice_api, bob_api, analyst_api):
    published = create(analyst_api, visibility="published").json()
    private = create(analyst_api, name="Secret").json()
    listed = {row["id"] for row in bob_api.get("/api/v1/strategies/").json()["results"]}
    assert published["id"] in listed
    assert private["id"] not in listed
    assert bob_api.get(f"/api/v1/strategies/{private['id']}/").status_code == 404
    assert bob_api.get(f"/api/v1/strategies/{published['id']}/").json()["is_mine"] is False
    assert (
        bob_api.patch(f"/api/v1/strategies/{published['id']}/", {"name": "Mine now"}, format="json").status_code == 404
    )
    assert bob_api.delete(f"/api/v1/strategies/{published['id']}/").status_code == 404
    assert bob_api.post(f"/api/v1/strategies/{private['id']}/clone/").status_code == 404
    clone = bob_api.post(f"/api/v1/strategies/{published['id']}/clone/")
    assert clone.status_code == 201
    copy = clone.json()
    assert (copy["visibility"], copy["is_mine"], copy["cloned_from"]) == ("private", True, published["id"])
    assert copy["params"] == published["params"]
    assert bob_api.get("/api/v1/strategies/?mine=1").json()["count"] == 1
    assert Strategy.objects.get(pk=published["id"]).name == "Golden cross"


def test_backtest_runs_and_returns_results(alice_api, market, run_backtest):
    strategy = create(alice_api, params={"fast": 5, "slow": 20}).json()
    end = timezone.now()
    payload = {"start": (end - timedelta(days=365)).isoformat(), "end": end.isoformat(), "initial_capital": "10000"}
    body = run_backtest(alice_api, strategy["id"], payload)
    assert body["status"] == "succeeded", body["error"]
    assert body["progress"] == 100
    assert body["bars"] > 300
    assert set(body["metrics"]) >= {"total_return", "cagr", "sharpe", "sortino", "max_drawdown", "win_rate", "trades"}
    assert body["metrics"]["trades"] == len(body["trades"])
    assert body["metrics"]["max_drawdown"] >= 0
    first = body["equity_curve"][0]
    assert isinstance(first[0], int)
    assert first[1] == "10000"  # flat before the first signal
    assert body["data_start"] is not None


def test_backtest_is_repeatable(alice_api, market, run_backtest):
    strategy = create(alice_api, kind="breakout", params={"lookback": 15}).json()
    end = timezone.now()
    payload = {"start": (end - timedelta(days=200)).isoformat(), "end": end.isoformat()}
    a = run_backtest(alice_api, strategy["id"], payload)
    b = run_backtest(alice_api, strategy["id"], payload)
    assert a["status"] == b["status"] == "succeeded"
    assert a["metrics"]["trades"] >= 1
    assert a["metrics"] == b["metrics"]
    assert a["trades"] == b["trades"]


def test_backtest_without_history_fails_with_a_reason(alice_api, market, run_backtest):
    strategy = create(alice_api).json()
    body = run_backtest(alice_api, strategy["id"], {"start": "2015-01-01T00:00:00Z", "end": "2015-06-01T00:00:00Z"})
    assert body["status"] == "failed"
    assert "No stored bitcoin history between 2015-01-01 and 2015-06-01" in body["error"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "initial_capital": "0"}, "initial_capital"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "fee_bps": "-1"}, "fee_bps"),
        ({"start": "yesterday", "end": "2026-02-01T00:00:00Z"}, "start"),
    ],
)
def test_backtest_bad_input(alice_api, market, payload, field):
    strategy = create(alice_api).json()
    response = alice_api.post(f"/api/v1/strategies/{strategy['id']}/backtests/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Backtest.objects.exists()


def test_backtests_are_private(alice_api, bob_api, analyst_api):
    published = create(analyst_api, visibility="published").json()
    end = timezone.now()
    payload = {"start": (end - timedelta(days=90)).isoformat(), "end": end.isoformat()}
    mine = bob_api.post(f"/api/v1/strategies/{published['id']}/backtests/", payload, format="json").json()
    assert alice_api.get(f"/api/v1/backtests/{mine['id']}/").status_code == 404
    assert alice_api.get("/api/v1/backtests/").json()["count"] == 0
    assert bob_api.get(f"/api/v1/backtests/?strategy={published['id']}").json()["count"] == 1
