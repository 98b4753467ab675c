"""Sync jobs: all-or-nothing writes, exact records, idempotent reruns, locks, retention, events, demo data."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import needs_concurrent_db, run_concurrently
from cryptodesk.locks import single_flight
from market import hooks, selectors, services, tasks
from market.coingecko import CoinGeckoBadPayload, CoinGeckoUnavailable
from market.demo.snapshot import load_snapshot
from market.models import Coin, GlobalStats, PricePoint, Quote, Source, SyncRun, TrendingCoin

from .conftest import BASE, html_page
from .payloads import GLOBAL, NOW, TRENDING, chart, market_row, markets

pytestmark = pytest.mark.django_db


def test_sync_writes_coins_quotes_points_and_records_the_run(cg_mock, make_client, django_capture_on_commit_callbacks):
    payload = markets(3)
    payload.append(market_row("broken", "brk", None, rank=4))
    cg_mock.get("/coins/markets").respond(json=payload)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.sync_markets(client=make_client(), follow_up=False)
    assert run.status == SyncRun.Status.PARTIAL  # a skipped record is not a success
    assert (run.coins_upserted, run.points_written, run.api_calls) == (3, 3, 1)
    assert (run.records_ok, run.records_skipped) == (3, 1)
    assert run.skipped == {"broken": "current_price is null"}
    assert run.finished_at >= run.started_at
    quote = Quote.objects.get(coin_id="coin-2")
    assert quote.current_price == Decimal("20")
    assert quote.market_cap == Decimal("20000")
    assert quote.last_updated == NOW
    assert quote.source == Source.COINGECKO
    assert PricePoint.objects.filter(coin_id="coin-2", ts=NOW, price=Decimal("20")).exists()
    assert not Coin.objects.filter(pk="broken").exists()


def test_a_sync_that_skips_nothing_succeeded_with_its_counts(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=markets(3))
    run = services.sync_markets(client=make_client())
    assert run.status == SyncRun.Status.SUCCEEDED
    assert (run.records_ok, run.records_skipped, run.skipped) == (3, 0, {})


def test_a_partial_sync_still_counts_as_the_last_sync(cg_mock, make_client):
    payload = [*markets(2), market_row("broken", "brk", None, rank=3)]
    cg_mock.get("/coins/markets").respond(json=payload)
    services.sync_markets(client=make_client())
    status = selectors.market_data_status()
    assert status["ok"] is True  # fresh: the data that came is there
    assert (status["status"], status["skipped"]) == ("partial", 1)
    assert status["age_s"] >= 0
    assert status["last_sync"].endswith("Z")


def test_sync_issues_three_write_statements_whatever_the_count(cg_mock, make_client):
    # SQLite caps a statement at 999 parameters (Django then batches); PostgreSQL takes all 250 at once
    count = 40 if connection.vendor == "sqlite" else 250
    cg_mock.get("/coins/markets").respond(json=markets(count))
    with CaptureQueriesContext(connection) as queries:
        services.sync_markets(client=make_client())
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    coin_like = [
        sql
        for sql in writes
        if "market_coin" in sql.split("(")[0]
        or "market_quote" in sql.split("(")[0]
        or "market_pricepoint" in sql.split("(")[0]
    ]
    assert len(coin_like) == 3


def test_rerun_with_the_same_data_changes_nothing(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=markets(3))
    services.sync_markets(client=make_client())
    before = list(
        Quote.objects.order_by("coin_id").values(
            "coin_id", "current_price", "market_cap", "last_updated", "sparkline_7d"
        )
    )
    services.sync_markets(client=make_client())
    after = list(
        Quote.objects.order_by("coin_id").values(
            "coin_id", "current_price", "market_cap", "last_updated", "sparkline_7d"
        )
    )
    assert before == after
    assert PricePoint.objects.count() == 3
    assert Coin.objects.count() == 3


def test_a_bad_answer_writes_nothing_and_records_why(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=markets(2))
    services.sync_markets(client=make_client())
    cg_mock.get("/coins/markets").respond(content=b"[{", headers={"content-type": "application/json"})
    with pytest.raises(CoinGeckoBadPayload):
        services.sync_markets(client=make_client())
    run = SyncRun.objects.filter(kind=SyncRun.Kind.MARKETS).order_by("-id").first()
    assert run.status == SyncRun.Status.FAILED
    assert "malformed JSON" in run.error
    assert run.api_calls == 1
    assert Quote.objects.get(coin_id="coin-1").current_price == Decimal("10")
    assert PricePoint.objects.count() == 2


def test_no_usable_coin_fails_the_run(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=[market_row("x", "x", None)])
    with pytest.raises(services.SyncFailed):
        services.sync_markets(client=make_client())
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert run.skipped == {"x": "current_price is null"}
    assert not Coin.objects.exists()


def test_unavailable_is_recorded_and_raised_for_the_task_to_retry(cg_mock, make_client):
    cg_mock.get("/coins/markets").mock(return_value=html_page(500))
    with pytest.raises(CoinGeckoUnavailable):
        services.sync_markets(client=make_client(max_retries=1))
    run = SyncRun.objects.get()
    assert run.status == SyncRun.Status.FAILED
    assert run.api_calls == 2


def test_after_commit_caches_refresh_and_prices_updated_is_published(
    cg_mock, make_client, django_capture_on_commit_callbacks
):
    received = []
    hooks.subscribe(received.append)
    try:
        cg_mock.get("/coins/markets").respond(json=markets(2))
        version = selectors.market_version()
        with django_capture_on_commit_callbacks(execute=True):
            services.sync_markets(client=make_client(), follow_up=False)
    finally:
        hooks.unsubscribe(received.append)
    assert selectors.market_version() != version
    assert len(received) == 1
    assert received[0].coin_ids == ("coin-1", "coin-2")
    assert received[0].source == "coingecko"


def test_a_failing_subscriber_does_not_break_the_others():
    seen = []

    def broken(event):
        raise RuntimeError("boom")

    hooks.subscribe(broken)
    hooks.subscribe(seen.append)
    try:
        hooks.publish(hooks.PricesUpdated(coin_ids=("a",), as_of=NOW, source="demo"))
    finally:
        hooks.unsubscribe(broken)
        hooks.unsubscribe(seen.append)
    assert len(seen) == 1


def test_claimed_runs_are_taken_once():
    run = SyncRun.objects.create(kind=SyncRun.Kind.MARKETS)
    assert services.start_run(kind=SyncRun.Kind.MARKETS, run_id=run.pk).status == SyncRun.Status.RUNNING
    assert services.start_run(kind=SyncRun.Kind.MARKETS, run_id=run.pk) is None


def test_the_task_skips_when_another_sync_holds_the_lock(cg_mock):
    route = cg_mock.get("/coins/markets").respond(json=markets(1))
    run = SyncRun.objects.create(kind=SyncRun.Kind.MARKETS)
    with single_flight("market-sync:markets", ttl_s=60) as acquired:
        assert acquired
        tasks.sync_markets_task.run(sync_run_id=run.pk)
    run.refresh_from_db()
    assert run.status == SyncRun.Status.SKIPPED
    assert route.call_count == 0
    assert not Coin.objects.exists()


def test_request_sync_refuses_a_second_while_one_is_queued():
    from cryptodesk.errors import Conflict

    SyncRun.objects.create(kind=SyncRun.Kind.MARKETS, status=SyncRun.Status.QUEUED)
    with pytest.raises(Conflict):
        services.request_sync()


def test_trending_and_global(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=markets(3))
    services.sync_markets(client=make_client())
    cg_mock.get("/search/trending").respond(json=TRENDING)
    cg_mock.get("/global").respond(json=GLOBAL)
    run = services.sync_trending_and_global(client=make_client())
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.api_calls == 2
    assert list(TrendingCoin.objects.values_list("rank", "coin_id")) == [(1, "coin-2"), (2, "newcoin")]
    assert Coin.objects.get(pk="newcoin").name == "New Coin"
    stats = GlobalStats.objects.get()
    assert stats.total_market_cap == Decimal("3100000000000.5")
    assert stats.as_of == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_backfill_fetches_only_what_is_missing(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(json=markets(2))
    services.sync_markets(client=make_client())
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    day = 86_400_000
    full = cg_mock.get("/coins/coin-1/market_chart").respond(
        json=chart([(now_ms - 300 * day, 5), (now_ms - 2 * day, 6)])
    )
    cg_mock.get("/coins/coin-2/market_chart").respond(json={"prices": "nope"})
    run = services.backfill_history(client=make_client(), top_n=2)
    assert full.calls.last.request.url.params["days"] == "365"  # never filled: a year (the demo plan's limit)
    assert run.status == SyncRun.Status.PARTIAL
    assert (run.records_ok, run.records_skipped) == (1, 1)
    assert run.points_written == 2
    assert run.skipped == {"coin-2": "market_chart.prices is not a list"}
    # now covered back a year: next time only the gap since the newest point
    PricePoint.objects.create(coin_id="coin-1", ts=datetime.now(UTC) - timedelta(days=364), price=1)
    PricePoint.objects.filter(coin_id="coin-1", ts=NOW).delete()
    services.backfill_history(client=make_client(), top_n=1)
    assert full.calls.last.request.url.params["days"] == "3"  # two days and a bit: whole days, rounded up


def _points(coin: Coin, start: datetime, every: timedelta, count: int) -> None:
    PricePoint.objects.bulk_create(
        [PricePoint(coin=coin, ts=start + every * i, price=Decimal(i)) for i in range(count)]
    )


def test_retention_downsamples_old_points(settings):
    settings.MARKET_KEEP_FINE_DAYS = 2
    settings.MARKET_KEEP_HOURLY_DAYS = 90
    coin = Coin.objects.create(id="c", symbol="c", name="C")
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    _points(coin, now - timedelta(hours=2), timedelta(minutes=5), 24)  # recent: kept as they are
    _points(coin, now - timedelta(days=5), timedelta(minutes=5), 24)  # 2 hours of 5-minute points → 2 hourly
    _points(coin, (now - timedelta(days=100)).replace(hour=0), timedelta(hours=1), 48)  # 2 days of hourly → 2 daily
    run = services.apply_retention(now=now)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.points_deleted == (24 - 2) + (48 - 2)
    old_days = PricePoint.objects.filter(ts__lt=now - timedelta(days=90)).order_by("ts")
    assert [p.ts.hour for p in old_days] == [23, 23]
    assert PricePoint.objects.filter(ts__gte=now - timedelta(days=2)).count() == 24
    again = services.apply_retention(now=now)
    assert again.points_deleted == 0


def test_demo_snapshot_loads_once_and_never_over_real_data():
    loaded = load_snapshot()
    assert loaded["coins"] == 101
    assert Quote.objects.filter(source=Source.DEMO).count() == 101
    assert PricePoint.objects.filter(coin_id="bitcoin").count() > 500
    assert GlobalStats.objects.get().source == Source.DEMO
    assert TrendingCoin.objects.count() == 7
    assert load_snapshot() is None  # idempotent
    assert Quote.objects.count() == 101
    assert selectors.market_data_status()["ok"] is True


def test_demo_tick_moves_only_demo_quotes(cg_mock, make_client):
    load_snapshot()
    cg_mock.get("/coins/markets").respond(json=[market_row("real-coin", "real", 5, rank=500)])
    services.sync_markets(client=make_client())
    before = dict(Quote.objects.values_list("coin_id", "current_price"))
    now = datetime.now(UTC) + timedelta(minutes=1)
    run = services.demo_tick(now=now)
    after = dict(Quote.objects.values_list("coin_id", "current_price"))
    assert run.coins_upserted == 101
    assert after["real-coin"] == before["real-coin"]
    moved = [coin for coin in before if coin != "real-coin" and after[coin] != before[coin]]
    assert len(moved) == 101
    assert PricePoint.objects.filter(ts=now).count() == 101
    assert Quote.objects.get(pk="bitcoin").last_updated == now


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs Redis (set REDIS_URL; CI does)")
def test_prices_updated_goes_out_over_redis_pubsub():
    import json

    from django_redis import get_redis_connection

    pubsub = get_redis_connection("default").pubsub()
    pubsub.subscribe(hooks.CHANNEL)
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        hooks.publish(hooks.PricesUpdated(coin_ids=("bitcoin", "ethereum"), as_of=NOW, source="coingecko"))
        message = pubsub.get_message(timeout=5)
    finally:
        pubsub.close()
    assert message is not None
    assert json.loads(message["data"]) == {
        "coin_ids": ["bitcoin", "ethereum"],
        "as_of": "2026-11-22T10:00:00+00:00",
        "source": "coingecko",
    }


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_syncs_run_once(cg_mock, settings):
    import time

    import httpx

    def slow_answer(request):
        time.sleep(0.5)  # long enough for the other sync to arrive while this one runs
        return httpx.Response(200, json=markets(2))

    settings.COINGECKO_BASE_URL = BASE
    route = cg_mock.get("/coins/markets").mock(side_effect=slow_answer)
    for kind in selectors.FOLLOW_UP_KINDS:  # not a first sync: nothing is chained
        SyncRun.objects.create(kind=kind, status=SyncRun.Status.SUCCEEDED)
    runs = [SyncRun.objects.create(kind=SyncRun.Kind.MARKETS) for _ in range(2)]
    run_concurrently(2, lambda index: tasks.sync_markets_task.run(sync_run_id=runs[index].pk))
    statuses = sorted(SyncRun.objects.filter(kind=SyncRun.Kind.MARKETS).values_list("status", flat=True))
    assert statuses == [SyncRun.Status.SKIPPED, SyncRun.Status.SUCCEEDED]
    assert route.call_count == 1
    assert Coin.objects.count() == 2
