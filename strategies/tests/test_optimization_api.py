"""Optimisations over the API: a grid queued (202, Location), run by the worker task, each row equal to the
backtest of its parameters through the normal backtest path; bad grids as problem details naming the parameter;
owner-scoped reads with constant queries; the cap shared with backtests; the reaper."""

from datetime import UTC, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from strategies import optimizations, services
from strategies.models import Backtest, Optimization, Strategy

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
DAYS = 420


@pytest.fixture
def coin(db):
    """A year and more of daily closes, a seeded random walk (no network, no demo snapshot)."""
    from market.models import Coin, PricePoint, Quote

    coin = Coin.objects.create(id="walkcoin", symbol="walk", name="Walkcoin", market_cap_rank=1)
    first = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAYS * DAY
    rng = np.random.default_rng(7)
    prices = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.035, DAYS)))
    PricePoint.objects.bulk_create(
        PricePoint(coin=coin, ts=first + day * DAY, price=Decimal(f"{price:.8f}")) for day, price in enumerate(prices)
    )
    Quote.objects.create(coin=coin, current_price=Decimal(f"{prices[-1]:.8f}"), last_updated=timezone.now())
    return coin


@pytest.fixture
def strategy(alice, coin) -> Strategy:
    return services.create_strategy(
        owner=alice, name="Cross", kind="sma_crossover", params={"fast": 10, "slow": 30}, coin=coin
    )


@pytest.fixture
def post(django_capture_on_commit_callbacks):
    """POST an optimisation; its task (queued on commit) runs before this returns, tasks being eager here."""

    def send(client, strategy_id, payload, *, run: bool = True):
        if not run:
            return client.post(f"/api/v1/strategies/{strategy_id}/optimizations/", payload, format="json")
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/api/v1/strategies/{strategy_id}/optimizations/", payload, format="json")

    return send


def span(days: int = 400) -> dict:
    end = timezone.now()
    return {"start": (end - days * DAY).isoformat(), "end": end.isoformat()}


def test_an_optimisation_runs_and_every_row_equals_its_backtest(
    alice_api, strategy, post, django_capture_on_commit_callbacks
):
    payload = {**span(), "grid": {"fast": [5, 10, 40], "slow": [20, 40]}, "objective": "total_return"}
    payload.update(fee_bps="10", slippage_bps="5", initial_capital="2500")
    response = post(alice_api, strategy.pk, payload)
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == f"http://testserver/api/v1/optimizations/{body['id']}/"
    detail = alice_api.get(response["Location"]).json()
    assert detail["status"] == "succeeded", detail["error"]
    assert detail["progress"] == 100
    assert (detail["combinations"], detail["skipped"]) == (6, 2)  # 40/20 and 40/40: fast must be below slow
    assert detail["grid"] == {"fast": [5, 10, 40], "slow": [20, 40]}
    assert detail["params"] == {"fast": 10, "slow": 30}
    assert detail["walk_forward"] is None
    assert detail["windows"] == []
    assert detail["oos_metrics"] is None
    rows = detail["results"]
    assert [(row["params"]["fast"], row["params"]["slow"]) for row in rows] == [
        (5, 20),
        (5, 40),
        (10, 20),
        (10, 40),
    ]
    returns = [row["metrics"]["total_return"] for row in rows]
    assert detail["best"]["index"] == returns.index(max(returns))
    assert detail["best"]["params"] == rows[detail["best"]["index"]]["params"]
    assert detail["deflated_sharpe"]["trials"] == 4
    assert 0 <= detail["deflated_sharpe"]["value"] <= 1

    # each row through the normal backtest path: the strategy set to those params, one backtest, same metrics
    for row in rows[:3]:
        strategy.params = row["params"]
        strategy.save()
        with django_capture_on_commit_callbacks(execute=True):
            queued = alice_api.post(
                f"/api/v1/strategies/{strategy.pk}/backtests/",
                {key: payload[key] for key in ("start", "end", "fee_bps", "slippage_bps", "initial_capital")},
                format="json",
            )
        backtest = alice_api.get(f"/api/v1/backtests/{queued.json()['id']}/").json()
        assert backtest["status"] == "succeeded"
        assert backtest["metrics"] == row["metrics"]
        assert backtest["bars"] == detail["bars"]


def test_walk_forward_over_the_api(alice_api, strategy, post):
    payload = {
        **span(),
        "grid": {"fast": [3, 5, 8], "slow": [13, 21]},
        "objective": "sharpe",
        "walk_forward": {"train_bars": 200, "test_bars": 60},
    }
    response = post(alice_api, strategy.pk, payload)
    assert response.status_code == 202, response.content
    detail = alice_api.get(response["Location"]).json()
    assert detail["status"] == "succeeded", detail["error"]
    assert detail["walk_forward"] == {"train_bars": 200, "test_bars": 60}
    windows = detail["windows"]
    assert len(windows) == (detail["bars"] - 260) // 60 + 1 >= 2
    assert windows[1]["train_start"] - windows[0]["train_start"] == 60 * 86_400_000
    assert windows[0]["test_start"] - windows[0]["train_end"] == 86_400_000
    for window in windows:
        assert window["params"] is None or set(window["params"]) >= {"fast", "slow"}
        assert set(window["out_of_sample"]) >= {"total_return", "sharpe", "trades"}
    assert detail["oos_metrics"]["trades"] == sum(window["out_of_sample"]["trades"] for window in windows)
    assert detail["oos_equity"][0][0] == windows[0]["test_start"]
    assert detail["oos_equity"][-1][1] == detail["oos_metrics"]["final_equity"]


@pytest.mark.parametrize(
    ("grid", "field", "detail"),
    [
        ({"speed": [1, 2]}, "grid.speed", "speed is not a parameter of sma_crossover."),
        ({"fast": []}, "grid.fast", "fast needs at least one value."),
        ({"fast": 5}, "grid.fast", "fast needs a list of values."),
        ({"fast": [5, 900]}, "grid.fast", "fast must be between 2 and 500."),
        ({"fast": ["1e2000000"]}, "grid.fast", "fast must be a whole number written with the digits 0-9."),
        ({"fast": ["ten"]}, "grid.fast", "fast must be a whole number written with the digits 0-9."),
        ({"fast": list(range(2, 50)), "slow": list(range(3, 50))}, "grid", "2,256 combinations are more than the "),
        ({"fast": [40, 50], "slow": [10, 20]}, "grid", "Every combination is refused: fast must be shorter than slow."),
        ({}, "grid", "Give at least one parameter of sma_crossover with a list of values."),
        ([5], "grid", "Expected an object of parameter names, each with a list of values."),
    ],
)
def test_a_bad_grid_is_a_problem_naming_the_parameter(alice_api, strategy, post, grid, field, detail):
    response = post(alice_api, strategy.pk, {**span(), "grid": grid}, run=False)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/validation-error"
    assert list(body["errors"]) == [field]
    assert body["errors"][field][0].startswith(detail)
    assert not Optimization.objects.exists()


def test_a_huge_json_number_in_the_grid_is_refused_on_its_size(alice_api, strategy):
    """As a string or a Decimal the grid's own check refuses it (above); as a raw number, the parser does."""
    body = '{"start": "%s", "end": "%s", "grid": {"fast": [1e2000000]}}' % (  # noqa: UP031 - a raw JSON number
        span()["start"],
        span()["end"],
    )
    response = alice_api.post(f"/api/v1/strategies/{strategy.pk}/optimizations/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/bad-request"  # refused by the JSON parser, before any conversion
    assert "number too large" in response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"objective": "luck"}, "objective"),
        ({"walk_forward": {"train_bars": 1, "test_bars": 20}}, "walk_forward.train_bars"),
        ({"walk_forward": {"train_bars": 100}}, "walk_forward.test_bars"),
        ({"walk_forward": {"train_bars": 300, "test_bars": 300}}, "walk_forward.train_bars"),
        ({"walk_forward": {"train_bars": 50, "test_bars": 5}}, "walk_forward.test_bars"),
        ({"end": "2020-01-01T00:00:00Z", "start": "2020-02-01T00:00:00Z"}, "end"),
    ],
)
def test_other_bad_input_names_its_field(alice_api, strategy, post, changes, field):
    response = post(alice_api, strategy.pk, {**span(), "grid": {"fast": [5]}, **changes}, run=False)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_grid_limit_is_a_setting(settings, alice_api, strategy, post):
    settings.OPTIMIZE_MAX_COMBINATIONS = 4
    refused = post(alice_api, strategy.pk, {**span(), "grid": {"fast": [2, 3, 4], "slow": [20, 30]}}, run=False)
    assert refused.json()["errors"]["grid"] == ["6 combinations are more than the 4 allowed: try fewer values."]
    assert post(alice_api, strategy.pk, {**span(), "grid": {"fast": [2, 3], "slow": [20, 30]}}).status_code == 202


def test_optimisations_are_their_owners(alice_api, bob_api, strategy, post):
    created = post(alice_api, strategy.pk, {**span(), "grid": {"fast": [5, 6]}}).json()
    assert bob_api.get(f"/api/v1/optimizations/{created['id']}/").status_code == 404
    assert bob_api.get(f"/api/v1/optimizations/{created['id']}/")["Content-Type"] == "application/problem+json"
    assert bob_api.get("/api/v1/optimizations/").json()["count"] == 0
    # bob cannot see alice's private strategy to optimise it either
    assert post(bob_api, strategy.pk, {**span(), "grid": {"fast": [5, 6]}}, run=False).status_code == 404
    listed = alice_api.get(f"/api/v1/optimizations/?strategy={strategy.pk}").json()
    assert [row["id"] for row in listed["results"]] == [created["id"]]
    assert "results" not in listed["results"][0]
    assert listed["results"][0]["best"] == alice_api.get(f"/api/v1/optimizations/{created['id']}/").json()["best"]


def test_the_list_costs_the_same_queries_for_one_row_or_five(
    alice, alice_api, strategy, django_assert_num_queries, django_assert_max_num_queries
):
    def add(count: int) -> None:
        for _ in range(count):
            Optimization.objects.create(
                strategy=strategy,
                owner=alice,
                kind="sma_crossover",
                params=strategy.params,
                grid={"fast": [5, 6]},
                objective="sharpe",
                coin=strategy.coin,
                timeframe="1d",
                start=timezone.now() - 30 * DAY,
                end=timezone.now(),
                initial_capital=1000,
                fee_bps=10,
                slippage_bps=0,
                combinations=2,
                results={"params": ["fast", "slow"], "metrics": ["sharpe"], "rows": [[[5, 30], [1.5]]] * 2},
            )

    add(1)
    alice_api.get("/api/v1/optimizations/")  # warm: the session and user are cached after the first request
    with django_assert_max_num_queries(4) as one:
        assert alice_api.get("/api/v1/optimizations/").json()["count"] == 1
    add(4)
    with django_assert_num_queries(len(one.captured_queries)):
        assert alice_api.get("/api/v1/optimizations/").json()["count"] == 5


def test_the_cap_counts_backtests_and_optimisations_together(alice, alice_api, strategy, post):
    assert settings.BACKTEST_MAX_ACTIVE_PER_USER == 3
    body = {**span(30), "grid": {"fast": [5, 6]}}
    for _ in range(2):  # queued: nothing commits here to run them
        assert post(alice_api, strategy.pk, body, run=False).status_code == 202
    assert alice_api.post(f"/api/v1/strategies/{strategy.pk}/backtests/", span(30), format="json").status_code == 202
    refused = post(alice_api, strategy.pk, body, run=False)
    assert refused.status_code == 429
    assert refused.json()["type"] == "/problems/too-many-backtests"
    assert "3 backtests or optimisations queued or running" in refused.json()["detail"]
    assert alice_api.post(f"/api/v1/strategies/{strategy.pk}/backtests/", span(30), format="json").status_code == 429
    Backtest.objects.update(status=Backtest.Status.SUCCEEDED)
    assert alice_api.post(f"/api/v1/strategies/{strategy.pk}/backtests/", span(30), format="json").status_code == 202
    assert Optimization.objects.filter(owner=alice, status="queued").count() == 2


def test_a_range_without_history_fails_with_a_reason(alice_api, strategy, post):
    payload = {"start": "2015-01-01T00:00:00Z", "end": "2015-06-01T00:00:00Z", "grid": {"fast": [5, 6]}}
    detail = alice_api.get(post(alice_api, strategy.pk, payload)["Location"]).json()
    assert detail["status"] == "failed"
    assert detail["error"].startswith("No stored walkcoin history between 2015-01-01 and 2015-06-01")


def test_the_task_runs_on_the_backtests_queue_and_claims_once(alice, strategy, monkeypatch):
    from strategies.tasks import run_optimization_task

    assert settings.CELERY_TASK_ROUTES["strategies.tasks.run_optimization_task"] == {"queue": "backtests"}
    assert run_optimization_task.acks_late
    assert run_optimization_task.reject_on_worker_lost
    assert run_optimization_task.time_limit == optimizations.OPTIMIZATION_TIME_LIMIT_S
    monkeypatch.setattr(optimizations, "enqueue_on_commit", lambda *args: None)
    queued = optimizations.queue_optimization(
        strategy=strategy,
        user=alice,
        start=timezone.now() - 100 * DAY,
        end=timezone.now(),
        grid={"fast": [5, 6]},
        objective="sharpe",
        initial_capital=Decimal(1000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    assert optimizations.run_optimization(queued.pk).status == "succeeded"
    assert optimizations.run_optimization(queued.pk) is None  # claimed already: never run twice
    queued.refresh_from_db()
    assert queued.attempts == 1


def test_the_reaper_requeues_once_then_fails(alice, strategy, monkeypatch):
    sent = []
    monkeypatch.setattr(
        services, "enqueue_on_commit", lambda task, pk: sent.append((task.name, pk))
    )  # the reaper shared with backtests
    now = timezone.now()
    late = now - timedelta(
        seconds=optimizations.OPTIMIZATION_TIME_LIMIT_S + optimizations.OPTIMIZATION_REAP_MARGIN_S + 1
    )

    def row(**fields) -> Optimization:
        return Optimization.objects.create(
            strategy=strategy,
            owner=alice,
            kind="sma_crossover",
            params=strategy.params,
            grid={"fast": [5, 6]},
            objective="sharpe",
            coin=strategy.coin,
            timeframe="1d",
            start=now - 30 * DAY,
            end=now,
            initial_capital=1000,
            fee_bps=10,
            slippage_bps=0,
            **fields,
        )

    lost = row(status="running", started_at=late, attempts=1, progress=40)
    twice = row(status="running", started_at=late, attempts=2)
    busy = row(status="running", started_at=now - timedelta(seconds=60), attempts=1)
    from strategies.tasks import reap_backtests_task

    assert reap_backtests_task() == {"requeued": 1, "failed": 1}  # the beat's reaper reaps both kinds of run
    for optimization in (lost, twice, busy):
        optimization.refresh_from_db()
    assert (lost.status, lost.progress, lost.started_at) == ("queued", 0, None)
    assert sent == [("strategies.tasks.run_optimization_task", str(lost.pk))]
    assert twice.status == "failed"
    assert "stopped 2 times" in twice.error
    assert busy.status == "running"
    assert optimizations.reap_optimizations(now=now) == {"requeued": 0, "failed": 0}


def test_the_schema_declares_the_operations(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    create = schema["paths"]["/api/v1/strategies/{id}/optimizations/"]["post"]
    assert set(create["responses"]) >= {"202", "429"}
    assert "Location" in create["responses"]["202"]["headers"]
    request = create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][request]["required"]) == {"start", "end", "grid"}
    assert "/api/v1/optimizations/{id}/" in schema["paths"]
    listed = schema["paths"]["/api/v1/optimizations/"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["$ref"].endswith("PaginatedOptimizationSummaryList")


def test_a_strategy_with_stops_in_the_grid(alice_api, strategy, post):
    response = post(alice_api, strategy.pk, {**span(), "grid": {"stop_loss_pct": [None, "0.05"], "fast": [5]}})
    detail = alice_api.get(response["Location"]).json()
    assert detail["status"] == "succeeded", detail["error"]
    assert [row["params"] for row in detail["results"]] == [
        {"fast": 5, "slow": 30},
        {"fast": 5, "slow": 30, "stop_loss_pct": "0.05"},
    ]
    assert detail["grid"] == {"fast": [5], "stop_loss_pct": [None, "0.05"]}  # the declared order
