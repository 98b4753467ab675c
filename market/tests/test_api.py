"""Market API: filters, ordering, pagination, lookups, history, OHLC, movers, caching, permissions."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from conftest import api_for, make_user
from market import selectors
from market.cache import refresh_market_caches
from market.models import Coin, PricePoint, Quote, SyncRun

pytestmark = pytest.mark.django_db

COINS = "/api/v1/coins/"


def add_coin(
    coin_id: str,
    symbol: str,
    price: str,
    *,
    rank: int | None,
    cap: str | None = None,
    volume: str = "100",
    change: str | None = "1.5",
    updated=None,
) -> Coin:
    coin = Coin.objects.create(id=coin_id, symbol=symbol, name=coin_id.title(), market_cap_rank=rank)
    Quote.objects.create(
        coin=coin,
        current_price=Decimal(price),
        market_cap=Decimal(cap) if cap is not None else None,
        total_volume=Decimal(volume),
        price_change_percentage_24h=Decimal(change) if change is not None else None,
        market_cap_rank=rank,
        last_updated=updated or timezone.now(),
        sparkline_7d=["1", "2", price],
    )
    return coin


@pytest.fixture
def market():
    add_coin("bitcoin", "btc", "64000.5", rank=1, cap="1200000000000", volume="30000000000", change="2.5")
    add_coin("ethereum", "eth", "3100.25", rank=2, cap="370000000000", volume="15000000000", change="-1.25")
    add_coin("uniswap", "uni", "6.1", rank=20, cap="3600000000", volume="90000000", change="7.75")
    add_coin("universe-token", "uni", "0.01", rank=900, cap="1000", volume="5", change=None)
    add_coin("nocap", "ncp", "1", rank=None, cap=None, volume="1", change="-9")


def ids(response) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


def test_anonymous_can_list_coins_with_every_field(anon_api, market):
    response = anon_api.get(COINS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert set(body) == {"count", "next", "previous", "results"}
    btc = body["results"][0]
    assert btc["id"] == "bitcoin"
    assert btc["current_price"] == "64000.5"
    assert btc["market_cap"] == "1200000000000"
    assert btc["price_change_percentage_24h"] == "2.5"
    assert btc["image"] == "/coins/bitcoin/logo/"
    assert btc["stale"] is False
    assert set(btc) >= {
        "id",
        "symbol",
        "name",
        "image",
        "market_cap_rank",
        "current_price",
        "market_cap",
        "total_volume",
        "price_change_percentage_24h",
        "last_updated",
    }
    assert ids(response)[-1] == "nocap"  # unranked last


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=uni", ["uniswap", "universe-token"]),
        ("search=ETH", ["ethereum"]),
        ("symbol=UNI", ["uniswap", "universe-token"]),
        ("min_market_cap=3600000000", ["bitcoin", "ethereum", "uniswap"]),
        ("max_market_cap=3600000000", ["uniswap", "universe-token"]),
        ("min_market_cap=1000&max_market_cap=400000000000", ["ethereum", "uniswap", "universe-token"]),
        ("ordering=-current_price", ["bitcoin", "ethereum", "uniswap", "nocap", "universe-token"]),
        ("ordering=current_price", ["universe-token", "nocap", "uniswap", "ethereum", "bitcoin"]),
        ("ordering=-price_change_percentage_24h", ["uniswap", "bitcoin", "ethereum", "nocap", "universe-token"]),
        ("ordering=price_change_percentage_24h", ["nocap", "ethereum", "bitcoin", "uniswap", "universe-token"]),
        ("ordering=-market_cap", ["bitcoin", "ethereum", "uniswap", "universe-token", "nocap"]),
        ("ordering=-total_volume", ["bitcoin", "ethereum", "uniswap", "universe-token", "nocap"]),
        ("ordering=-market_cap_rank", ["universe-token", "uniswap", "ethereum", "bitcoin", "nocap"]),
    ],
)
def test_filters_and_ordering(anon_api, market, query, expected):
    response = anon_api.get(f"{COINS}?{query}")
    assert response.status_code == 200
    assert ids(response) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [("ordering=bogus", "ordering"), ("min_market_cap=lots", "min_market_cap"), ("page_size=0", None)],
)
def test_bad_filters_are_400(anon_api, market, query, field):
    response = anon_api.get(f"{COINS}?{query}")
    if field is None:  # page_size below 1 falls back to the default, as DRF does
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


def test_pagination(anon_api, market):
    first = anon_api.get(f"{COINS}?page_size=2").json()
    assert len(first["results"]) == 2
    assert first["next"].endswith("page=2&page_size=2")
    last = anon_api.get(f"{COINS}?page_size=2&page=3").json()
    assert [row["id"] for row in last["results"]] == ["nocap"]
    assert last["next"] is None
    assert anon_api.get(f"{COINS}?page=99").status_code == 404


def test_page_size_is_capped_at_250(anon_api):
    Coin.objects.bulk_create([Coin(id=f"c{i:03}", symbol=f"c{i}", name=f"C{i}", market_cap_rank=i) for i in range(260)])
    Quote.objects.bulk_create(
        [Quote(coin_id=f"c{i:03}", current_price=1, last_updated=timezone.now()) for i in range(260)]
    )
    assert len(anon_api.get(f"{COINS}?page_size=1000").json()["results"]) == 250
    assert len(anon_api.get(COINS).json()["results"]) == 50


def test_coin_by_id_or_symbol(anon_api, market):
    assert anon_api.get(f"{COINS}ethereum/").json()["id"] == "ethereum"
    assert anon_api.get(f"{COINS}ETH/").json()["id"] == "ethereum"
    assert anon_api.get(f"{COINS}uni/").json()["id"] == "uniswap"  # the highest-ranked coin with the symbol
    missing = anon_api.get(f"{COINS}dogecoin/")
    assert missing.status_code == 404
    assert missing["Content-Type"] == "application/problem+json"


def test_stale_quotes_are_flagged(anon_api, settings):
    settings.MARKET_STALE_AFTER = timedelta(minutes=15)
    add_coin("old", "old", "1", rank=1, updated=timezone.now() - timedelta(minutes=16))
    add_coin("new", "new", "1", rank=2, updated=timezone.now() - timedelta(minutes=14))
    rows = {row["id"]: row["stale"] for row in anon_api.get(COINS).json()["results"]}
    assert rows == {"old": True, "new": False}


def _history(coin: Coin, now: datetime) -> None:
    points = [
        PricePoint(coin=coin, ts=now - timedelta(minutes=5 * i), price=Decimal(100 + i)) for i in range(0, 12 * 24 * 2)
    ]
    points += [PricePoint(coin=coin, ts=now - timedelta(days=d, hours=7), price=Decimal(d)) for d in range(3, 400)]
    PricePoint.objects.bulk_create(points)


def test_history_ranges_and_granularity(anon_api, market):
    now = timezone.now().replace(second=0, microsecond=0)
    _history(Coin.objects.get(pk="bitcoin"), now)
    day = anon_api.get(f"{COINS}bitcoin/history/?days=1").json()
    assert set(day) == {"prices", "market_caps", "total_volumes"}
    assert len(day["prices"]) == 12 * 24  # every 5-minute point of the last 24 hours (the one 24 h ago is out)
    assert day["prices"][-1] == [int(now.timestamp() * 1000), "100"]
    assert isinstance(day["prices"][0][0], int)
    week = anon_api.get(f"{COINS}bitcoin/history/?days=7").json()["prices"]
    hours = {ms // 3_600_000 for ms, _ in week}
    assert len(hours) == len(week)  # at most one point an hour
    year = anon_api.get(f"{COINS}bitcoin/history/?days=365").json()["prices"]
    assert len({ms // 86_400_000 for ms, _ in year}) == len(year)
    everything = anon_api.get(f"{COINS}bitcoin/history/?days=max").json()["prices"]
    assert len(everything) > len(year)
    bad = anon_api.get(f"{COINS}bitcoin/history/?days=2")
    assert bad.status_code == 400
    assert "days" in bad.json()["errors"]
    assert anon_api.get(f"{COINS}nothing/history/?days=1").status_code == 404


def test_ohlc_is_computed_from_stored_points(anon_api, market):
    coin = Coin.objects.get(pk="ethereum")
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    prices = ["10", "12", "9", "11", "20", "18"]  # three in the first 30-minute candle, three in the next
    for i, price in enumerate(prices):
        PricePoint.objects.create(coin=coin, ts=start + timedelta(minutes=10 * i), price=Decimal(price))
    candles = selectors.ohlc(coin, days=1, now=start + timedelta(hours=1))
    assert candles == [
        [int(start.timestamp() * 1000), "10", "12", "9", "9"],
        [int(start.timestamp() * 1000) + 1_800_000, "11", "20", "11", "18"],
    ]
    response = anon_api.get(f"{COINS}ethereum/ohlc/?days=30")
    assert response.status_code == 200
    assert isinstance(response.json(), list)


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("gainers", ["uniswap", "bitcoin", "ethereum"]),
        ("losers", ["nocap", "ethereum", "bitcoin"]),
        ("volume", ["bitcoin", "ethereum", "uniswap"]),
        ("market_cap", ["bitcoin", "ethereum", "uniswap"]),
    ],
)
def test_top_movers(anon_api, market, category, expected):
    response = anon_api.get(f"/api/v1/market/top/{category}/?limit=3")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == expected


def test_top_bad_input(anon_api, market):
    assert anon_api.get("/api/v1/market/top/sideways/").status_code == 404
    assert anon_api.get("/api/v1/market/top/gainers/?limit=101").status_code == 400
    assert anon_api.get("/api/v1/market/top/gainers/?limit=0").status_code == 400


def test_trending_and_global_before_and_after_data(anon_api, django_capture_on_commit_callbacks):
    trending = anon_api.get("/api/v1/market/trending/")
    assert (trending.status_code, trending.json()) == (200, [])
    empty = anon_api.get("/api/v1/market/global/")
    assert empty.status_code == 200
    assert empty.json() == {
        "as_of": None,
        "total_market_cap": None,
        "total_volume": None,
        "btc_dominance": None,
        "eth_dominance": None,
        "market_cap_change_percentage_24h": None,
        "active_cryptocurrencies": None,
        "source": None,
        "status": "empty",
    }
    from market.demo.snapshot import load_snapshot

    with django_capture_on_commit_callbacks(execute=True):  # the write refreshes the caches once committed
        load_snapshot()
    trending = anon_api.get("/api/v1/market/trending/").json()
    assert len(trending) == 7
    assert trending[0]["rank"] == 1
    body = anon_api.get("/api/v1/market/global/").json()
    assert set(body) >= {"total_market_cap", "total_volume", "btc_dominance", "as_of"}
    assert body["status"] == "ok"
    assert body["source"] == "demo"
    assert body["total_market_cap"] is not None


def test_etag_and_304(anon_api, market):
    first = anon_api.get(COINS)
    etag = first["ETag"]
    assert first["Cache-Control"] == "max-age=30"
    again = anon_api.get(COINS, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert anon_api.get(COINS, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_cache_is_refreshed_by_a_sync(anon_api, market):
    before = anon_api.get(f"{COINS}?page_size=1").json()["results"][0]["current_price"]
    Quote.objects.filter(coin_id="bitcoin").update(current_price=Decimal("1"))
    assert anon_api.get(f"{COINS}?page_size=1").json()["results"][0]["current_price"] == before  # cached
    refresh_market_caches()  # what every sync does after it commits
    assert anon_api.get(f"{COINS}?page_size=1").json()["results"][0]["current_price"] == "1"


@pytest.mark.parametrize(
    "url",
    [
        COINS,
        f"{COINS}bitcoin/",
        "/api/v1/market/top/gainers/",
        "/api/v1/market/trending/",
        f"{COINS}bitcoin/history/?days=7",
    ],
)
def test_constant_queries_whatever_the_size(url, django_assert_max_num_queries, alice):
    client = api_for(alice)
    add_coin("bitcoin", "btc", "1", rank=1, cap="10")
    client.get(url)  # warm: session, user, version
    refresh_market_caches()  # top lists and trending are prewarmed here: 0 queries; the others build once
    with django_assert_max_num_queries(4) as small:
        assert client.get(url).status_code == 200
    baseline = len(small.captured_queries)  # read now: the next request resets the query log
    for i in range(60):
        add_coin(f"coin-{i}", f"c{i}", "2", rank=i + 2, cap="5")
    PricePoint.objects.bulk_create(
        [PricePoint(coin_id="bitcoin", ts=timezone.now() - timedelta(hours=i), price=1) for i in range(100)]
    )
    refresh_market_caches()
    with django_assert_max_num_queries(baseline):
        assert client.get(url).status_code == 200
    with django_assert_max_num_queries(0):  # and once built, from the cache
        assert client.get(url).status_code == 200


def test_sync_is_admin_only(anon_api, alice, django_capture_on_commit_callbacks, monkeypatch):
    from market import tasks

    calls = []
    monkeypatch.setattr(
        tasks.sync_markets_task, "apply_async", lambda args=(), kwargs=None, **options: calls.append((kwargs, options))
    )
    assert anon_api.post("/api/v1/market/sync/").status_code == 401
    assert api_for(alice).post("/api/v1/market/sync/").status_code == 403
    operator = make_user("ops@example.com", role="admin")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(operator).post("/api/v1/market/sync/")
    assert response.status_code == 202
    body = response.json()
    run = SyncRun.objects.get()
    assert body["sync_run"]["id"] == run.pk
    assert body["sync_run"]["status"] == "queued"
    assert calls == [({"sync_run_id": run.pk}, {"task_id": body["task_id"]})]
    second = api_for(operator).post("/api/v1/market/sync/")
    assert second.status_code == 409
    runs = api_for(operator).get("/api/v1/market/sync-runs/")
    assert runs.json()["count"] == 1
    assert api_for(alice).get("/api/v1/market/sync-runs/").status_code == 403
