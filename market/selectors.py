"""Market reads for pages, endpoints and probes (the cache version is written by `market.cache`)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, QuerySet
from django.utils import timezone

from cryptodesk.money import as_str
from cryptodesk.timestamps import from_ms, to_ms

from .models import Coin, GlobalStats, PricePoint, SyncRun, TrendingCoin

VERSION_KEY = "market:version"
HISTORY_DAYS = {"1": 1, "7": 7, "14": 14, "30": 30, "90": 90, "180": 180, "365": 365, "max": None}
TOP_CATEGORIES = {
    "gainers": F("quote__price_change_percentage_24h").desc(nulls_last=True),
    "losers": F("quote__price_change_percentage_24h").asc(nulls_last=True),
    "volume": F("quote__total_volume").desc(nulls_last=True),
    "market_cap": F("quote__market_cap").desc(nulls_last=True),
}
TOP_LIMIT_MAX = 100
MARKET_SYNC_KINDS = [SyncRun.Kind.MARKETS, SyncRun.Kind.DEMO_TICK]


def coin_rows() -> QuerySet[Coin]:
    """Coins that have a quote, with it, in rank order (unranked last)."""
    return (
        Coin.objects.filter(quote__isnull=False)
        .select_related("quote")
        .order_by(F("market_cap_rank").asc(nulls_last=True), "id")
    )


def coin_by_id_or_symbol(key: str) -> Coin | None:
    """A CoinGecko id, or a symbol (case-insensitive): the highest-ranked coin with it."""
    rows = coin_rows()
    return rows.filter(pk=key).first() or rows.filter(symbol__iexact=key).first()


def is_stale(last_updated: datetime | None, *, now: datetime | None = None) -> bool:
    if last_updated is None:
        return True
    return (now or timezone.now()) - last_updated > settings.MARKET_STALE_AFTER


# --- history -----------------------------------------------------------------------------------


def history_bucket(days: int | None) -> timedelta | None:
    """Point spacing by range, as CoinGecko serves it: fine for a day, hourly to 90 days, then daily."""
    if days is not None and days <= 1:
        return None
    if days is not None and days <= 90:
        return timedelta(hours=1)
    return timedelta(days=1)


def _points(
    coin: Coin, days: int | None, now: datetime
) -> list[tuple[datetime, Decimal, Decimal | None, Decimal | None]]:
    qs = PricePoint.objects.filter(coin=coin)
    if days is not None:
        qs = qs.filter(ts__gte=now - timedelta(days=days))
    return list(qs.order_by("ts").values_list("ts", "price", "market_cap", "total_volume"))


def _last_per_bucket(points, bucket: timedelta | None):
    if bucket is None:
        return points
    size = int(bucket.total_seconds() * 1000)
    kept: dict[int, tuple] = {}
    for point in points:
        kept[to_ms(point[0]) // size] = point  # ascending: the last one in each bucket wins
    return list(kept.values())


def price_history(coin: Coin, *, days: int | None, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    points = _last_per_bucket(_points(coin, days, now), history_bucket(days))
    return {
        "prices": [[to_ms(ts), as_str(price)] for ts, price, _, _ in points],
        "market_caps": [[to_ms(ts), as_str(cap)] for ts, _, cap, _ in points if cap is not None],
        "total_volumes": [[to_ms(ts), as_str(volume)] for ts, _, _, volume in points if volume is not None],
    }


def ohlc_bucket(days: int | None) -> timedelta:
    if days is not None and days <= 2:
        return timedelta(minutes=30)
    if days is not None and days <= 30:
        return timedelta(hours=4)
    return timedelta(days=1)


def ohlc(coin: Coin, *, days: int | None, now: datetime | None = None) -> list[list]:
    """Candles computed from stored points: [[bucket start ms, open, high, low, close], ...] (see `candles`)."""
    now = now or timezone.now()
    size = ohlc_bucket(days)
    start = None if days is None else bucket_start(now - timedelta(days=days), size)
    prices = _prices(coin, start)
    made = candles(prices, size, previous_close=_close_before(coin, start) if prices else None)
    return [[to_ms(c.start), as_str(c.open), as_str(c.high), as_str(c.low), as_str(c.close)] for c in made]


# --- charts ------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # weekly buckets start on Mondays, 00:00 UTC
WEEK = timedelta(weeks=1)
CHART_RANGES = {"1": 1, "7": 7, "30": 30, "90": 90, "365": 365, "max": None}  # the coin page's range buttons
CHART_KINDS = ("line", "candles")
# One spacing per range and kind, whatever resolution is stored (fine for two days, hourly to 90, then daily):
# the chart's time axis is uniform, so a week of hourly points never crowds out the daily ones before it.
CHART_BUCKETS = {
    "1": (timedelta(minutes=5), timedelta(minutes=30)),
    "7": (timedelta(hours=1), timedelta(hours=4)),
    "30": (timedelta(hours=1), timedelta(days=1)),
    "90": (timedelta(hours=4), timedelta(days=1)),
    "365": (timedelta(days=1), WEEK),
    "max": (timedelta(days=1), WEEK),
}
CLOSES_ONLY_NOTE = "Only closing prices are stored for this range: each candle opens at the previous close."
SOME_CLOSES_ONLY_NOTE = (
    "Only closing prices are stored for {single} of these {stored} candles: each of those opens at the previous close."
)


def bucket_start(moment: datetime, size: timedelta) -> datetime:
    """The start of the bucket holding `moment`: whole multiples of `size` since the epoch (weeks: since a Monday)."""
    origin = _MONDAY if size == WEEK else _EPOCH
    return origin + (moment - origin) // size * size


@dataclass(frozen=True, slots=True)
class Candle:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    points: int  # stored points in the bucket; 1: only its close is known


def candles(
    prices: list[tuple[datetime, Decimal]], size: timedelta, *, previous_close: Decimal | None = None
) -> list[Candle]:
    """One candle per bucket that holds stored points (ascending `prices`).

    Several points give the open (first), high, low and close (last). A single point is only a close (daily
    history from CoinGecko has nothing else): the candle runs from the previous close to it, so it shows the
    move rather than a flat dash; the first one, with nothing stored before it, opens at its own close.
    """
    grouped: dict[datetime, list[Decimal]] = {}
    for ts, price in prices:
        grouped.setdefault(bucket_start(ts, size), []).append(price)
    made: list[Candle] = []
    close = previous_close
    for start, values in grouped.items():
        if len(values) > 1:
            opening, high, low = values[0], max(values), min(values)
        else:
            opening = values[0] if close is None else close
            high, low = max(opening, values[0]), min(opening, values[0])
        made.append(Candle(start, opening, high, low, values[-1], len(values)))
        close = values[-1]
    return made


def _prices(coin: Coin, start: datetime | None) -> list[tuple[datetime, Decimal]]:
    qs = PricePoint.objects.filter(coin=coin)
    if start is not None:
        qs = qs.filter(ts__gte=start)
    return list(qs.order_by("ts").values_list("ts", "price"))


def _close_before(coin: Coin, start: datetime | None) -> Decimal | None:
    if start is None:
        return None
    return PricePoint.objects.filter(coin=coin, ts__lt=start).order_by("-ts").values_list("price", flat=True).first()


def price_places(price: Decimal | None) -> int:
    """Decimal places the page shows for a price (the `price` filter): 2 from $1 up, else 3 significant digits."""
    if price is None or price >= 1 or price <= 0:
        return 2
    return min(max(2, -price.adjusted() + 3), 12)


def chart_data(coin: Coin, *, days: str, kind: str, now: datetime | None = None) -> dict:
    """What the coin page's chart draws, on a uniform time axis: one slot per bucket from the first stored one
    to the last, with a value where points are stored and only a time where none are (a gap keeps its width).

    Times are UTC epoch seconds (the chart library's), prices decimal strings. `price_format` sizes the price
    axis' steps for the smallest price drawn, so a $0.00001234 coin keeps its labels.
    """
    now = now or timezone.now()
    size = CHART_BUCKETS[days][CHART_KINDS.index(kind)]
    start = None if CHART_RANGES[days] is None else bucket_start(now - timedelta(days=CHART_RANGES[days]), size)
    prices = _prices(coin, start)
    slots: dict[datetime, dict] = {}
    single = 0
    if kind == "line":
        for ts, price in prices:
            slots[bucket_start(ts, size)] = {"value": price}  # ascending: the last point of a bucket wins
        lowest = min((slot["value"] for slot in slots.values()), default=None)
    else:
        made = candles(prices, size, previous_close=_close_before(coin, start) if prices else None)
        for candle in made:
            slots[candle.start] = {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close}
        single = sum(candle.points == 1 for candle in made)
        lowest = min((candle.low for candle in made), default=None)
    points = []
    if slots:
        moment, last = next(iter(slots)), next(reversed(slots))
        while moment <= last:
            values = slots.get(moment, {})
            points.append({"time": to_ms(moment) // 1000, **{name: as_str(v) for name, v in values.items()}})
            moment += size
    if single and single == len(slots):
        note = CLOSES_ONLY_NOTE
    elif single:
        note = SOME_CLOSES_ONLY_NOTE.format(single=single, stored=len(slots))
    else:
        note = ""
    places = price_places(lowest)
    return {
        "days": days,
        "kind": kind,
        "bucket_s": int(size.total_seconds()),
        "points": points,
        "stored": len(slots),
        "single_close": single,
        "note": note,
        "price_format": {"min_move": as_str(Decimal(1).scaleb(-places)), "precision": places},
    }


# --- lists -------------------------------------------------------------------------------------


def top_coins(category: str, *, limit: int) -> QuerySet[Coin]:
    order = TOP_CATEGORIES[category]
    field = order.expression.name
    return coin_rows().filter(**{f"{field}__isnull": False}).order_by(order, "id")[:limit]


def trending_coins() -> QuerySet[TrendingCoin]:
    return TrendingCoin.objects.select_related("coin", "coin__quote").order_by("rank")


def latest_global_stats() -> GlobalStats | None:
    return GlobalStats.objects.order_by("-as_of").first()


def recent_sync_runs() -> QuerySet[SyncRun]:
    return SyncRun.objects.select_related("requested_by").order_by("-created_at", "-id")


def last_market_sync() -> SyncRun | None:
    """The newest market write that finished, whole or partial."""
    return (
        SyncRun.objects.filter(kind__in=MARKET_SYNC_KINDS, status__in=SyncRun.FINISHED).order_by("-finished_at").first()
    )


def market_data_status() -> dict:
    """Freshness of the stored market data, for /health/ready (stale or partial data is reported, never a 503)."""
    run = last_market_sync()
    if run is None or run.finished_at is None:
        return {
            "ok": False,
            "last_sync": None,
            "age_s": None,
            "status": "empty",
            "skipped": 0,
            "detail": "no market data synced yet",
        }
    age = timezone.now() - run.finished_at
    fresh = age <= settings.MARKET_STALE_AFTER
    detail = "fresh" if fresh else f"stale: older than {int(settings.MARKET_STALE_AFTER.total_seconds())} s"
    if run.status == SyncRun.Status.PARTIAL:
        detail += f"; {run.records_skipped} records skipped"
    return {
        "ok": fresh,
        "last_sync": run.finished_at.isoformat().replace("+00:00", "Z"),
        "age_s": int(age.total_seconds()),
        "status": run.status,
        "skipped": run.records_skipped,
        "kind": run.kind,
        "detail": detail,
    }


FOLLOW_UP_KINDS = [SyncRun.Kind.TRENDING_GLOBAL, SyncRun.Kind.HISTORY]
FOLLOW_UP_PENDING_FOR = timedelta(hours=1)  # past this a queued run's task is gone (expired or lost)


def missing_initial_syncs(*, now: datetime | None = None) -> list[str]:
    """Follow-up jobs a fresh market still lacks: never finished, and none queued or running right now."""
    now = now or timezone.now()
    done = set(
        SyncRun.objects.filter(kind__in=FOLLOW_UP_KINDS, status__in=SyncRun.FINISHED).values_list("kind", flat=True)
    )
    pending = set(
        SyncRun.objects.filter(
            kind__in=FOLLOW_UP_KINDS,
            status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING],
            created_at__gte=now - FOLLOW_UP_PENDING_FOR,
        ).values_list("kind", flat=True)
    )
    return [kind for kind in FOLLOW_UP_KINDS if kind not in done | pending]


# --- cache version -------------------------------------------------------------------------------


def market_version() -> str:
    """Changes whenever market data changes; every cached market response is keyed by it."""
    version = cache.get(VERSION_KEY)
    if version is None:
        run = last_market_sync()
        version = str(to_ms(run.finished_at)) if run and run.finished_at else "0"
        cache.add(VERSION_KEY, version, timeout=None)
        version = cache.get(VERSION_KEY, version)
    return version


def market_modified(version: str | None = None) -> datetime | None:
    version = version or market_version()
    return None if version == "0" else from_ms(int(version))


DASHBOARD_PANELS_TTL_S = 60  # keyed by the market version too; a minute keeps the movers' staleness honest


def dashboard_panels() -> dict:
    """Movers, trending and global figures change only with a sync: built once per market version, for everyone."""
    key = f"pages:dashboard-market:{market_version()}"
    panels = cache.get(key)
    if panels is None:
        panels = {
            "global_stats": latest_global_stats(),
            "gainers": list(top_coins("gainers", limit=5)),
            "losers": list(top_coins("losers", limit=5)),
            "trending": list(trending_coins()[:7]),
            "market_status": market_data_status(),
        }
        cache.set(key, panels, timeout=DASHBOARD_PANELS_TTL_S)
    status = panels["market_status"]
    if status.get("last_sync"):  # the age is now's, not the cached one's
        age = timezone.now() - datetime.fromisoformat(status["last_sync"].replace("Z", "+00:00"))
        panels["market_status"] = {
            **status,
            "age_s": int(age.total_seconds()),
            "ok": age <= settings.MARKET_STALE_AFTER,
        }
    return panels
