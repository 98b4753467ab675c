"""Market writes: syncs from CoinGecko (all-or-nothing per batch), retention, demo data and ticker."""

import logging
import math
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, Max, Min, OuterRef, Subquery, Value
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from cryptodesk.errors import Conflict
from cryptodesk.money import CONTEXT, quantize
from cryptodesk.outbox import apply_async_on_commit
from cryptodesk.timestamps import from_ms

from . import hooks
from .budget import CallBudgetExhausted
from .cache import refresh_market_caches
from .coingecko import CoinGeckoBadPayload, CoinGeckoClient, CoinGeckoError, GlobalSnapshot, MarketRow, TrendingItem
from .models import Coin, GlobalStats, PricePoint, Quote, Source, SyncRun, TrendingCoin
from .selectors import missing_initial_syncs

logger = logging.getLogger(__name__)

QUOTE_FIELDS = [
    "current_price",
    "market_cap",
    "total_volume",
    "price_change_percentage_24h",
    "high_24h",
    "low_24h",
    "market_cap_rank",
    "sparkline_7d",
    "last_updated",
    "source",
]
SPARKLINE_POINTS = 42  # a 7-day sparkline every 4 hours: enough for the eye, small in the cache
SPARKLINE_SLOT_S = 7 * 24 * 3600 // SPARKLINE_POINTS


class SyncFailed(Exception):
    """The job ran and failed for a reason recorded on its SyncRun."""


# --- sync runs ----------------------------------------------------------------------------------


def start_run(*, kind: str, run_id: int | None = None) -> SyncRun | None:
    """Claim a queued run (None if another worker has it), or open a new one."""
    now = timezone.now()
    if run_id is None:
        return SyncRun.objects.create(kind=kind, status=SyncRun.Status.RUNNING, started_at=now)
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
        status=SyncRun.Status.RUNNING, started_at=now
    )
    return SyncRun.objects.get(pk=run_id) if claimed else None


def finish_run(run: SyncRun, *, status: str, **fields) -> SyncRun:
    for name, value in fields.items():
        setattr(run, name, value)
    run.status = status
    run.finished_at = timezone.now()
    run.save()
    return run


def skip_run(run_id: int, *, reason: str) -> None:
    now = timezone.now()
    SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
        status=SyncRun.Status.SKIPPED, started_at=now, finished_at=now, error=reason
    )


def fail_run(run: SyncRun, error: Exception | str, *, api_calls: int = 0) -> SyncRun:
    return finish_run(run, status=SyncRun.Status.FAILED, error=str(error)[:2000], api_calls=api_calls)


def _task_for(kind: str):
    from . import tasks

    return {
        SyncRun.Kind.MARKETS: tasks.sync_markets_task,
        SyncRun.Kind.TRENDING_GLOBAL: tasks.sync_trending_and_global_task,
        SyncRun.Kind.HISTORY: tasks.backfill_history_task,
    }[kind]


@transaction.atomic
def request_sync(*, requested_by=None) -> tuple[SyncRun, str]:
    """Queue a market sync now (operators): returns the run and the Celery task id."""
    from celery import uuid as celery_uuid

    if SyncRun.objects.filter(
        kind=SyncRun.Kind.MARKETS, status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING]
    ).exists():
        raise Conflict("A market sync is already queued or running.")
    run = SyncRun.objects.create(kind=SyncRun.Kind.MARKETS, status=SyncRun.Status.QUEUED, requested_by=requested_by)
    task_id = celery_uuid()
    # robust: run eagerly (no broker), a failed sync is recorded on its run, never raised into the request
    apply_async_on_commit(_task_for(SyncRun.Kind.MARKETS), kwargs={"sync_run_id": run.pk}, task_id=task_id, robust=True)
    return run, task_id


def _dispatcher(kind: str, run_id: int):
    def dispatch_run() -> None:  # a named function: Django logs a robust callback's failure by its __qualname__
        apply_async_on_commit(_task_for(kind), kwargs={"sync_run_id": run_id})

    return dispatch_run


@transaction.atomic
def queue_follow_up_syncs(*, kinds: Iterable[str]) -> list[SyncRun]:
    """Queue trending/global and history runs through their tasks (locks and the call budget apply).

    Each is dispatched on its own after commit: one failing (eagerly, without a broker) never stops the
    other, nor undoes the write that queued it.
    """
    runs = [SyncRun.objects.create(kind=kind, status=SyncRun.Status.QUEUED) for kind in kinds]
    for run in runs:
        transaction.on_commit(_dispatcher(run.kind, run.pk), robust=True)
    return runs


def _finished_status(skipped: dict) -> str:
    return SyncRun.Status.PARTIAL if skipped else SyncRun.Status.SUCCEEDED


# --- markets --------------------------------------------------------------------------------------


def _sparkline(prices: list[Decimal]) -> list[str]:
    if not prices:
        return []
    step = max(1, math.ceil(len(prices) / SPARKLINE_POINTS))
    sampled = prices[::step]
    if sampled[-1] is not prices[-1]:
        sampled.append(prices[-1])
    return [str(price.normalize()) if price else "0" for price in sampled]


def write_market_rows(rows: list[MarketRow], *, source: str = Source.COINGECKO) -> tuple[int, int]:
    """Three statements whatever the count: upsert coins, upsert quotes, insert price points."""
    now = timezone.now()
    coins = [
        Coin(
            id=row.id,
            symbol=row.symbol,
            name=row.name,
            image_url=row.image[:500],
            market_cap_rank=row.market_cap_rank,
            source=source,
            created_at=now,
            updated_at=now,
        )
        for row in rows
    ]
    Coin.objects.bulk_create(
        coins,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["symbol", "name", "image_url", "market_cap_rank", "source", "updated_at"],
    )
    quotes = [
        Quote(
            coin_id=row.id,
            current_price=row.current_price,
            market_cap=row.market_cap,
            total_volume=row.total_volume,
            price_change_percentage_24h=row.price_change_percentage_24h,
            high_24h=row.high_24h,
            low_24h=row.low_24h,
            market_cap_rank=row.market_cap_rank,
            sparkline_7d=_sparkline(row.sparkline),
            last_updated=row.last_updated,
            source=source,
            synced_at=now,
        )
        for row in rows
    ]
    Quote.objects.bulk_create(quotes, update_conflicts=True, unique_fields=["coin"], update_fields=QUOTE_FIELDS)
    points = [
        PricePoint(
            coin_id=row.id,
            ts=row.last_updated,
            price=row.current_price,
            market_cap=row.market_cap,
            total_volume=row.total_volume,
        )
        for row in rows
    ]
    PricePoint.objects.bulk_create(points, ignore_conflicts=True)  # a rerun adds nothing
    return len(coins), len(points)


def _after_prices_written(coin_ids: Iterable[str], *, source: str) -> None:
    refresh_market_caches()
    hooks.publish(hooks.PricesUpdated(coin_ids=tuple(coin_ids), as_of=timezone.now(), source=source))


def sync_markets(
    *, run_id: int | None = None, client: CoinGeckoClient | None = None, per_page: int = 250, follow_up: bool = True
) -> SyncRun | None:
    """Fetch the top coins and write them in one transaction; a bad answer writes nothing.

    On a fresh market (`follow_up`) it also queues what the first sync still lacks: trending and global
    stats, and the history backfill, so coin pages and backtests work right after it.
    """
    run = start_run(kind=SyncRun.Kind.MARKETS, run_id=run_id)
    if run is None:
        return None
    cg = client or CoinGeckoClient()
    try:
        rows, skipped = cg.markets(per_page=per_page)
    except (CoinGeckoError, CallBudgetExhausted) as exc:
        fail_run(run, exc, api_calls=cg.calls)
        raise
    finally:
        if client is None:
            cg.close()
    if not rows:
        fail_run(run, f"no usable coin in the answer ({len(skipped)} skipped)", api_calls=cg.calls)
        run.skipped = skipped
        run.save(update_fields=["skipped"])
        raise SyncFailed(run.error)
    with transaction.atomic():
        coins, points = write_market_rows(rows)
        finish_run(
            run,
            status=_finished_status(skipped),
            coins_upserted=coins,
            points_written=points,
            records_ok=coins,
            records_skipped=len(skipped),
            skipped=skipped,
            api_calls=cg.calls,
        )
        transaction.on_commit(partial(_after_prices_written, [row.id for row in rows], source=Source.COINGECKO))
        if follow_up:
            queue_follow_up_syncs(kinds=missing_initial_syncs())
    return run


# --- history backfill ------------------------------------------------------------------------------


def _history_days_needed(coin_id: str, *, now: datetime, max_days: int | None) -> int:
    """Only what is missing: the gap since the newest point, or a full year for a coin we never filled."""
    stored = PricePoint.objects.filter(coin_id=coin_id).aggregate(first=Min("ts"), last=Max("ts"))
    year = max_days or 365
    if stored["first"] is None or stored["first"] > now - timedelta(days=year - 2):
        return year
    gap = now - stored["last"]
    if gap < timedelta(hours=1):
        return 0
    return min(year, max(1, math.ceil(gap / timedelta(days=1))))


def backfill_history(
    *, run_id: int | None = None, client: CoinGeckoClient | None = None, top_n: int | None = None
) -> SyncRun | None:
    """For the top coins, fetch the history we do not have yet; each coin's batch is all or nothing."""
    run = start_run(kind=SyncRun.Kind.HISTORY, run_id=run_id)
    if run is None:
        return None
    top_n = top_n or settings.MARKET_HISTORY_TOP_N
    cg = client or CoinGeckoClient()
    now = timezone.now()
    written, filled, skipped = 0, 0, {}
    try:
        coin_ids = list(
            Coin.objects.filter(quote__isnull=False, source=Source.COINGECKO)
            .order_by(F("market_cap_rank").asc(nulls_last=True))
            .values_list("id", flat=True)[:top_n]
        )
        for coin_id in coin_ids:
            days = _history_days_needed(coin_id, now=now, max_days=cg.max_history_days())
            if not days:
                continue
            try:
                series = cg.market_chart(coin_id, days=days)
            except CoinGeckoBadPayload as exc:
                skipped[coin_id] = str(exc)  # this coin's answer is unusable; the others may be fine
                continue
            points = [
                PricePoint(
                    coin_id=coin_id,
                    ts=from_ms(ms),
                    price=price,
                    market_cap=series.market_caps.get(ms),
                    total_volume=series.total_volumes.get(ms),
                )
                for ms, price in series.prices
            ]
            with transaction.atomic():
                created = PricePoint.objects.bulk_create(points, ignore_conflicts=True)
            written += len(created)
            filled += 1
    except (CoinGeckoError, CallBudgetExhausted) as exc:
        finish_run(
            run,
            status=SyncRun.Status.FAILED,
            error=str(exc)[:2000],
            api_calls=cg.calls,
            points_written=written,
            records_ok=filled,
            records_skipped=len(skipped),
            skipped=skipped,
        )
        raise
    finally:
        if client is None:
            cg.close()
    return finish_run(
        run,
        status=_finished_status(skipped),
        points_written=written,
        records_ok=filled,
        records_skipped=len(skipped),
        skipped=skipped,
        api_calls=cg.calls,
    )


# --- trending and global ----------------------------------------------------------------------------


def write_trending(items: list[TrendingItem], *, as_of: datetime) -> int:
    """Replace the trending list; coins not yet known are added (without a quote)."""
    Coin.objects.bulk_create(
        [
            Coin(
                id=item.id,
                symbol=item.symbol,
                name=item.name,
                image_url=item.image[:500],
                market_cap_rank=item.market_cap_rank,
            )
            for item in items
        ],
        ignore_conflicts=True,
    )
    TrendingCoin.objects.all().delete()
    TrendingCoin.objects.bulk_create(
        [TrendingCoin(coin_id=item.id, rank=rank, score=item.score, as_of=as_of) for rank, item in enumerate(items, 1)]
    )
    return len(items)


def write_global(snapshot: GlobalSnapshot, *, source: str = Source.COINGECKO) -> GlobalStats:
    stats, _ = GlobalStats.objects.update_or_create(
        as_of=snapshot.as_of,
        defaults={
            "total_market_cap": snapshot.total_market_cap,
            "total_volume": snapshot.total_volume,
            "btc_dominance": snapshot.btc_dominance,
            "eth_dominance": snapshot.eth_dominance,
            "market_cap_change_percentage_24h": snapshot.market_cap_change_percentage_24h,
            "active_cryptocurrencies": snapshot.active_cryptocurrencies,
            "source": source,
        },
    )
    return stats


def sync_trending_and_global(*, run_id: int | None = None, client: CoinGeckoClient | None = None) -> SyncRun | None:
    run = start_run(kind=SyncRun.Kind.TRENDING_GLOBAL, run_id=run_id)
    if run is None:
        return None
    cg = client or CoinGeckoClient()
    try:
        trending = cg.trending()
        snapshot = cg.global_stats()
    except (CoinGeckoError, CallBudgetExhausted) as exc:
        fail_run(run, exc, api_calls=cg.calls)
        raise
    finally:
        if client is None:
            cg.close()
    with transaction.atomic():
        count = write_trending(trending, as_of=timezone.now())
        write_global(snapshot)
        finish_run(run, status=SyncRun.Status.SUCCEEDED, coins_upserted=count, records_ok=count, api_calls=cg.calls)
        transaction.on_commit(refresh_market_caches)
    return run


# --- retention --------------------------------------------------------------------------------------


def _downsample(*, older_than: datetime, trunc, span: timedelta) -> int:
    """Keep the last point of each bucket (hour or day) for points older than `older_than`."""
    old = PricePoint.objects.filter(ts__lt=older_than).annotate(
        bucket_end=ExpressionWrapper(trunc("ts") + Value(span), output_field=DateTimeField())
    )
    later_in_same_bucket = PricePoint.objects.filter(
        coin=OuterRef("coin"), ts__gt=OuterRef("ts"), ts__lt=OuterRef("bucket_end")
    )
    deleted, _ = old.filter(Exists(later_in_same_bucket)).delete()
    return deleted


def apply_retention(*, run_id: int | None = None, now: datetime | None = None) -> SyncRun | None:
    """Fine points become hourly after MARKET_KEEP_FINE_DAYS, hourly become daily after MARKET_KEEP_HOURLY_DAYS."""
    run = start_run(kind=SyncRun.Kind.RETENTION, run_id=run_id)
    if run is None:
        return None
    now = now or timezone.now()
    with transaction.atomic():
        deleted = _downsample(
            older_than=now - timedelta(days=settings.MARKET_KEEP_FINE_DAYS), trunc=TruncHour, span=timedelta(hours=1)
        )
        deleted += _downsample(
            older_than=now - timedelta(days=settings.MARKET_KEEP_HOURLY_DAYS), trunc=TruncDay, span=timedelta(days=1)
        )
        finish_run(run, status=SyncRun.Status.SUCCEEDED, points_deleted=deleted)
    return run


# --- demo data --------------------------------------------------------------------------------------


def record_demo_run(*, coins: int, points: int) -> SyncRun:
    now = timezone.now()
    return SyncRun.objects.create(
        kind=SyncRun.Kind.DEMO_TICK,
        status=SyncRun.Status.SUCCEEDED,
        created_at=now,
        started_at=now,
        finished_at=now,
        coins_upserted=coins,
        points_written=points,
    )


def after_demo_write() -> None:
    coin_ids = list(Quote.objects.filter(source=Source.DEMO).values_list("coin_id", flat=True))
    _after_prices_written(coin_ids, source=Source.DEMO)


def demo_tick(*, now: datetime | None = None, seed: int = 2026) -> SyncRun | None:
    """Move demo prices one seeded random-walk step (offline trading practice); real quotes are never touched."""
    now = now or timezone.now()
    day_ago_price = (
        PricePoint.objects.filter(coin=OuterRef("coin"), ts__lte=now - timedelta(hours=24))
        .order_by("-ts")
        .values("price")[:1]
    )
    quotes = list(
        Quote.objects.filter(source=Source.DEMO).annotate(day_ago=Subquery(day_ago_price)).order_by("coin_id")
    )
    if not quotes:
        return None
    rng = random.Random(f"{seed}:{int(now.timestamp()) // 60}")  # the same minute gives the same step
    points = []
    for quote in quotes:
        with localcontext(CONTEXT):
            step = Decimal("0.004") * Decimal(repr(rng.gauss(0, 1)))
            price = quantize(quote.current_price * step.exp())
            ratio = price / quote.current_price
        quote.current_price = price
        quote.market_cap = quantize(quote.market_cap * ratio, places=2) if quote.market_cap is not None else None
        quote.high_24h = max(quote.high_24h or price, price)
        quote.low_24h = min(quote.low_24h or price, price)
        if quote.day_ago:
            quote.price_change_percentage_24h = quantize((price / quote.day_ago - 1) * 100, places=8)
        # a point every 4 hours, as synced: within one slot the newest point follows the price, a new slot shifts
        same_slot = quote.last_updated is not None and (
            int(quote.last_updated.timestamp()) // SPARKLINE_SLOT_S == int(now.timestamp()) // SPARKLINE_SLOT_S
        )
        kept = quote.sparkline_7d[:-1] if same_slot else quote.sparkline_7d[1:]
        quote.sparkline_7d = [*kept, str(price.normalize())] if quote.sparkline_7d else [str(price.normalize())]
        quote.last_updated = now
        points.append(PricePoint(coin_id=quote.coin_id, ts=now, price=price, market_cap=quote.market_cap))
    with transaction.atomic():
        # one upsert, as a sync writes quotes: bulk_update's CASE would round decimals through REAL on SQLite
        Quote.objects.bulk_create(
            quotes,
            update_conflicts=True,
            unique_fields=["coin"],
            update_fields=[
                "current_price",
                "market_cap",
                "high_24h",
                "low_24h",
                "price_change_percentage_24h",
                "sparkline_7d",
                "last_updated",
            ],
        )
        PricePoint.objects.bulk_create(points, ignore_conflicts=True)
        run = record_demo_run(coins=len(quotes), points=len(points))
        transaction.on_commit(partial(_after_prices_written, [q.coin_id for q in quotes], source=Source.DEMO))
    return run
