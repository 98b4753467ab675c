"""A fresh install's first sync: markets, trending, global stats and history, so coin pages work at once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from cryptodesk.timestamps import to_ms
from market import services, tasks
from market.models import GlobalStats, PricePoint, SyncRun, TrendingCoin

from .conftest import BASE
from .payloads import GLOBAL, TRENDING, chart, market_row

DAY_MS = 86_400_000


@pytest.fixture
def coingecko(cg_mock, settings):
    """A CoinGecko double answering every call a first sync makes (three coins); returns the history routes."""
    settings.COINGECKO_BASE_URL = BASE
    settings.COINGECKO_API_KEY = ""
    settings.COINGECKO_CALLS_PER_MINUTE = 1000
    settings.MARKET_SYNC_TOP_N = 3
    settings.MARKET_HISTORY_TOP_N = 2
    now = timezone.now().replace(microsecond=0)
    now_ms = to_ms(now)
    cg_mock.get("/coins/markets").respond(
        json=[
            market_row("coin-1", "c1", 10, rank=1, updated=now),
            market_row("coin-2", "c2", 20, rank=2, updated=now),
            market_row("coin-3", "c3", 30, rank=3, updated=now),
        ]
    )
    series = chart([(now_ms - 20 * DAY_MS, 8), (now_ms - 10 * DAY_MS, 9), (now_ms - DAY_MS, 10)])
    charts = {
        coin: cg_mock.get(f"/coins/{coin}/market_chart").respond(json=series) for coin in ("coin-1", "coin-2", "coin-3")
    }
    cg_mock.get("/search/trending").respond(json=TRENDING)
    cg_mock.get("/global").respond(json=GLOBAL)
    return charts


@pytest.mark.django_db(transaction=True)
def test_sync_markets_command_on_an_empty_market_brings_everything(coingecko):
    out = StringIO()
    call_command("sync_markets", stdout=out)
    assert PricePoint.objects.filter(coin_id="coin-1").count() == 4  # three of history and the quote's own
    assert PricePoint.objects.filter(coin_id="coin-3").count() == 1  # beyond MARKET_HISTORY_TOP_N
    assert coingecko["coin-3"].call_count == 0
    assert GlobalStats.objects.count() == 1
    assert list(TrendingCoin.objects.values_list("coin_id", flat=True)) == ["coin-2", "newcoin"]
    kinds = dict(SyncRun.objects.values_list("kind", "status"))
    assert kinds == {
        SyncRun.Kind.MARKETS: SyncRun.Status.SUCCEEDED,
        SyncRun.Kind.TRENDING_GLOBAL: SyncRun.Status.SUCCEEDED,
        SyncRun.Kind.HISTORY: SyncRun.Status.SUCCEEDED,
    }
    summary = out.getvalue()
    assert "markets: succeeded" in summary
    assert "trending and global: succeeded" in summary
    assert "history: succeeded" in summary
    assert "6 points written" in summary  # two coins, three points each

    history = APIClient().get("/api/v1/coins/coin-1/history/?days=30")
    assert history.status_code == 200
    assert len(history.json()["prices"]) == 4
    assert APIClient().get("/api/v1/market/global/").json()["total_market_cap"] == "3100000000000.5"


@pytest.mark.django_db(transaction=True)
def test_the_first_beat_sync_chains_the_rest_and_later_ones_do_not(coingecko):
    tasks.sync_markets_task.run()
    assert SyncRun.objects.filter(kind=SyncRun.Kind.HISTORY, status=SyncRun.Status.SUCCEEDED).count() == 1
    assert SyncRun.objects.filter(kind=SyncRun.Kind.TRENDING_GLOBAL, status=SyncRun.Status.SUCCEEDED).count() == 1
    assert coingecko["coin-1"].call_count == 1

    tasks.sync_markets_task.run()
    assert SyncRun.objects.filter(kind=SyncRun.Kind.MARKETS).count() == 2
    assert SyncRun.objects.filter(kind=SyncRun.Kind.HISTORY).count() == 1
    assert SyncRun.objects.filter(kind=SyncRun.Kind.TRENDING_GLOBAL).count() == 1
    assert coingecko["coin-1"].call_count == 1


@pytest.mark.django_db
def test_a_follow_up_already_queued_is_not_queued_twice(coingecko, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    for task in (tasks.backfill_history_task, tasks.sync_trending_and_global_task):
        monkeypatch.setattr(task, "apply_async", lambda args=(), kwargs=None, **options: queued.append(kwargs))
    SyncRun.objects.create(kind=SyncRun.Kind.HISTORY, status=SyncRun.Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_markets()
    runs = SyncRun.objects.filter(kind=SyncRun.Kind.TRENDING_GLOBAL, status=SyncRun.Status.QUEUED)
    assert queued == [{"sync_run_id": runs.get().pk}]
    assert SyncRun.objects.filter(kind=SyncRun.Kind.HISTORY).count() == 1


@pytest.mark.django_db
def test_a_queued_run_older_than_its_task_can_live_no_longer_blocks(coingecko, django_capture_on_commit_callbacks):
    SyncRun.objects.create(
        kind=SyncRun.Kind.HISTORY, status=SyncRun.Status.QUEUED, created_at=timezone.now() - timedelta(hours=3)
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_markets()
    assert SyncRun.objects.filter(kind=SyncRun.Kind.HISTORY, status=SyncRun.Status.SUCCEEDED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failing_follow_up_is_reported_and_the_others_still_run(coingecko, cg_mock):
    from django.core.management.base import CommandError

    cg_mock.get("/search/trending").respond(401, json={"error": "bad key"})
    out = StringIO()
    with pytest.raises(CommandError, match="trending and global sync failed: /search/trending: HTTP 401"):
        call_command("sync_markets", stdout=out)
    assert "markets: succeeded" in out.getvalue()
    assert "trending and global: failed" in out.getvalue()
    assert "history: succeeded" in out.getvalue()
    assert PricePoint.objects.filter(coin_id="coin-2").count() == 4
