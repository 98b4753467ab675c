"""The coin page's chart data: a true time axis (uniform buckets per range), real candles, a price format that fits."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from cryptodesk.timestamps import to_ms
from market import selectors
from market.demo.snapshot import load_snapshot
from market.models import Coin, PricePoint
from market.templatetags.market_tags import price as price_text

from .test_api import COINS, add_coin

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 22, 10, 7, 41, tzinfo=UTC)
HOUR = 3600
DAY = 86_400
RANGES = ["1", "7", "30", "90", "365", "max"]  # the page's buttons: 1D, 7D, 30D, 90D, 1Y, Max
BUCKETS = {  # range: (line, candles) in seconds, whatever resolution the stored history has
    "1": (300, 1800),
    "7": (HOUR, 4 * HOUR),
    "30": (HOUR, DAY),
    "90": (4 * HOUR, DAY),
    "365": (DAY, 7 * DAY),
    "max": (DAY, 7 * DAY),
}
GAP = (NOW - timedelta(days=13), NOW - timedelta(days=10))  # the sync was down: nothing stored in between


def chart_url(coin_id: str, days: str, kind: str) -> str:
    return f"/markets/{coin_id}/chart/?days={days}&kind={kind}"


@pytest.fixture
def frozen_now(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return NOW


def retained_history(coin: Coin, now: datetime) -> None:
    """What syncs and the retention policy leave: 5-minute points for two days, hourly to 90 days, then daily.

    Each kept point is the last sync of its hour or day (a few seconds past the minute, as real syncs land).
    """
    points: list[PricePoint] = []
    fine_start = now - timedelta(days=2)
    moment = now
    while moment > fine_start:
        points.append(PricePoint(coin=coin, ts=moment, price=Decimal("64000") + len(points)))
        moment -= timedelta(minutes=5)
    hour = fine_start.replace(minute=55, second=17, microsecond=0) - timedelta(hours=1)
    while hour > now - timedelta(days=90):
        if not GAP[0] <= hour < GAP[1]:
            points.append(PricePoint(coin=coin, ts=hour, price=Decimal("60000") + len(points) % 97))
        hour -= timedelta(hours=1)
    day = hour.replace(hour=23) - timedelta(days=1)
    while day > now - timedelta(days=400):
        points.append(PricePoint(coin=coin, ts=day, price=Decimal("30000") + len(points) % 89))
        day -= timedelta(days=1)
    PricePoint.objects.bulk_create(points)


@pytest.fixture(params=["retained", "demo"])
def history(request, frozen_now) -> Coin:
    """Bitcoin with a stored history that mixes resolutions, as live syncs with retention, or the demo, leave it."""
    if request.param == "demo":
        load_snapshot(now=frozen_now)
        return Coin.objects.get(pk="bitcoin")
    coin = add_coin("bitcoin", "btc", "64000.5", rank=1, updated=frozen_now)
    retained_history(coin, frozen_now)
    return coin


def bucket_of(seconds: int, size: int) -> int:
    origin = 4 * DAY if size == 7 * DAY else 0  # weeks start on Monday, 1970-01-05
    return (seconds - origin) // size * size + origin


def window_start(days: str, size: int) -> datetime | None:
    """A range covers whole buckets: from the start of the bucket holding "now minus the range"."""
    if days == "max":
        return None
    return datetime.fromtimestamp(bucket_of(to_ms(NOW - timedelta(days=int(days))) // 1000, size), UTC)


def stored(coin: Coin, days: str, size: int) -> list[tuple[int, Decimal]]:
    """The stored points the range covers, oldest first, as (epoch seconds, price)."""
    rows = PricePoint.objects.filter(coin=coin).order_by("ts")
    if days != "max":
        rows = rows.filter(ts__gte=window_start(days, size))
    return [(to_ms(ts) // 1000, price) for ts, price in rows.values_list("ts", "price")]


def previous_close(coin: Coin, days: str, size: int) -> Decimal | None:
    if days == "max":
        return None
    before = PricePoint.objects.filter(coin=coin, ts__lt=window_start(days, size)).order_by("-ts").first()
    return before.price if before else None


@pytest.mark.parametrize("days", RANGES)
def test_line_axis_is_uniform_and_every_stored_bucket_is_on_it(client, history, days):
    body = client.get(chart_url(history.pk, days, "line")).json()
    size = BUCKETS[days][0]
    assert body["bucket_s"] == size
    times = [point["time"] for point in body["points"]]
    assert times, "no points"
    assert all(later - earlier == size for earlier, later in pairwise(times)), "spacing varies"
    assert all(time % size == 0 for time in times)

    expected: dict[int, Decimal] = {}
    for seconds, price in stored(history, days, size):
        expected[bucket_of(seconds, size)] = price  # oldest first: the last stored point of a bucket wins
    assert times[0] == min(expected)
    assert times[-1] == max(expected)
    drawn = {point["time"]: Decimal(point["value"]) for point in body["points"] if "value" in point}
    assert drawn == expected
    assert body["stored"] == len(expected)
    empty = [point for point in body["points"] if "value" not in point]
    assert all(set(point) == {"time"} for point in empty)  # gaps are whitespace: the axis keeps their width
    assert len(body["points"]) == (times[-1] - times[0]) // size + 1
    assert body["note"] == ""


@pytest.mark.parametrize("days", ["30", "90"])
def test_a_sync_outage_keeps_its_width_on_the_axis(client, frozen_now, days):
    coin = add_coin("bitcoin", "btc", "64000.5", rank=1, updated=frozen_now)
    retained_history(coin, frozen_now)
    points = client.get(chart_url("bitcoin", days, "line")).json()["points"]
    size = BUCKETS[days][0]
    inside = [p for p in points if to_ms(GAP[0]) // 1000 + size <= p["time"] < to_ms(GAP[1]) // 1000 - size]
    assert len(inside) >= 3 * DAY // size - 2
    assert all("value" not in p for p in inside)


@pytest.mark.parametrize("days", RANGES)
def test_candles_come_from_the_stored_points_of_each_bucket(client, history, days):
    body = client.get(chart_url(history.pk, days, "candles")).json()
    size = BUCKETS[days][1]
    assert body["bucket_s"] == size
    times = [candle["time"] for candle in body["points"]]
    assert all(later - earlier == size for earlier, later in pairwise(times)), "spacing varies"
    if size == 7 * DAY:
        assert all(datetime.fromtimestamp(time, UTC).weekday() == 0 for time in times)

    buckets: dict[int, list[Decimal]] = {}
    for seconds, price in stored(history, days, size):
        buckets.setdefault(bucket_of(seconds, size), []).append(price)
    assert times[0] == min(buckets)
    assert times[-1] == max(buckets)
    candles = {c["time"]: c for c in body["points"] if "close" in c}
    assert set(candles) == set(buckets)
    close = previous_close(history, days, size)
    single = 0
    for start in sorted(buckets):
        prices = buckets[start]
        got = {key: Decimal(candles[start][key]) for key in ("open", "high", "low", "close")}
        if len(prices) > 1:
            want = {"open": prices[0], "high": max(prices), "low": min(prices), "close": prices[-1]}
        else:  # only a close is stored: the candle runs from the previous close to it
            single += 1
            opening = prices[0] if close is None else close
            want = {"open": opening, "high": max(opening, prices[0]), "low": min(opening, prices[0])}
            want["close"] = prices[0]
        assert got == want, start
        close = prices[-1]
    assert body["stored"] == len(buckets)
    assert body["single_close"] == single
    assert all(set(c) == {"time"} for c in body["points"] if "close" not in c)


def test_the_page_says_when_candles_only_have_closing_prices(client, frozen_now):
    load_snapshot(now=frozen_now)  # hourly for a week, daily for the year before
    week = client.get(chart_url("bitcoin", "7", "candles")).json()
    assert week["single_close"] == 0
    assert week["note"] == ""
    day = client.get(chart_url("bitcoin", "1", "candles")).json()  # 30-minute candles, hourly points
    assert day["single_close"] == day["stored"] > 0
    assert day["note"] == "Only closing prices are stored for this range: each candle opens at the previous close."
    quarter = client.get(chart_url("bitcoin", "90", "candles")).json()
    assert 0 < quarter["single_close"] < quarter["stored"]
    assert quarter["note"] == (
        f"Only closing prices are stored for {quarter['single_close']} of these {quarter['stored']} candles: "
        "each of those opens at the previous close."
    )


@pytest.mark.parametrize(
    ("prices", "min_move"),
    [
        (["0.00001234", "0.00001301", "0.00001187"], "0.00000001"),
        (["0.5123", "0.61"], "0.0001"),
        (["64000.5", "0.99"], "0.0001"),
        (["64000.5", "63000"], "0.01"),
        (["0", "0"], "0.01"),
    ],
)
def test_price_format_keeps_the_significant_digits_of_the_smallest_price(client, frozen_now, prices, min_move):
    coin = add_coin("shiba-inu", "shib", prices[-1], rank=1, updated=frozen_now)
    for hours, price in enumerate(reversed(prices)):
        PricePoint.objects.create(coin=coin, ts=NOW - timedelta(hours=hours), price=Decimal(price))
    for kind in ("line", "candles"):
        body = client.get(chart_url("shiba-inu", "7", kind)).json()
        assert body["price_format"] == {"min_move": min_move, "precision": -Decimal(min_move).adjusted()}


@pytest.mark.parametrize("value", ["64000.5", "1", "0.99", "0.5123", "0.012346", "0.00001234", "0.0000000001", "0"])
def test_the_axis_steps_in_the_places_the_page_prints_prices_with(value):
    printed = price_text(Decimal(value))
    assert selectors.price_places(Decimal(value)) == len(printed.partition(".")[2])


def test_chart_data_validates_its_query_and_finds_coins_by_symbol(client, frozen_now):
    coin = add_coin("bitcoin", "btc", "64000.5", rank=1, updated=frozen_now)
    PricePoint.objects.create(coin=coin, ts=NOW, price=Decimal("64000.5"))
    assert client.get(chart_url("BTC", "30", "line")).json()["stored"] == 1
    assert client.get("/markets/bitcoin/chart/").json()["days"] == "30"  # the page's default range
    for query in ("days=2", "days=abc", "kind=bars"):
        response = client.get(f"/markets/bitcoin/chart/?{query}")
        assert response.status_code == 400
        assert response.json()["errors"]
    assert client.get(chart_url("nothing", "30", "line")).status_code == 404
    empty = add_coin("empty", "emp", "1", rank=2, updated=frozen_now)
    body = client.get(chart_url(empty.pk, "30", "candles")).json()
    assert body["points"] == []
    assert body["stored"] == 0


def test_chart_data_is_cached_per_market_version(client, frozen_now, django_assert_num_queries):
    coin = add_coin("bitcoin", "btc", "64000.5", rank=1, updated=frozen_now)
    PricePoint.objects.create(coin=coin, ts=NOW, price=Decimal("64000.5"))
    first = client.get(chart_url("bitcoin", "7", "line"))
    assert first["ETag"]
    with django_assert_num_queries(0):  # the coin and its series come from the cache
        again = client.get(chart_url("bitcoin", "7", "line"))
    assert again.content == first.content
    assert client.get(chart_url("bitcoin", "7", "line"), HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_api_candles_open_at_the_previous_close_when_a_bucket_holds_one_point(anon_api):
    coin = add_coin("ethereum", "eth", "3100", rank=1)
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    for days, price in enumerate(["10", "12", "9"]):  # one close a day, as CoinGecko's daily history
        PricePoint.objects.create(coin=coin, ts=start + timedelta(days=days, hours=23), price=Decimal(price))
    candles = selectors.ohlc(coin, days=None, now=start + timedelta(days=3))
    day_ms = DAY * 1000
    assert candles == [
        [to_ms(start), "10", "10", "10", "10"],
        [to_ms(start) + day_ms, "10", "12", "10", "12"],
        [to_ms(start) + 2 * day_ms, "12", "12", "9", "9"],
    ]
    shape = anon_api.get(f"{COINS}ethereum/ohlc/?days=max").json()
    assert shape == candles


def test_coin_page_draws_its_chart_from_the_chart_data(client, frozen_now):
    add_coin("bitcoin", "btc", "64000.5", rank=1, updated=frozen_now)
    html = client.get("/markets/BTC/").content.decode()
    assert 'data-chart-url="/markets/bitcoin/chart/"' in html
    assert "data-chart-note" in html
    assert html.index("js/charts.js") < html.index("js/coin_chart.js")
