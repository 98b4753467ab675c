"""Market jobs: thin tasks around one service each; one at a time (lock), late acks, transient retries."""

import random

from celery import shared_task
from django.conf import settings

from cryptodesk.locks import single_flight

from . import logos, services
from .coingecko import CallBudgetExhausted, CoinGeckoRateLimited, CoinGeckoUnavailable

RETRY = {
    "bind": True,
    "acks_late": True,
    "max_retries": 5,
    "autoretry_for": (CoinGeckoUnavailable,),
    "retry_backoff": True,
    "retry_jitter": True,
}


def _retry_later(task, exc: CoinGeckoRateLimited | CallBudgetExhausted):
    """Never before Retry-After (or before the shared budget has room again)."""
    wait_s = getattr(exc, "retry_after_s", 60)
    return task.retry(exc=exc, countdown=wait_s + random.uniform(0, 3))


@shared_task(**RETRY, soft_time_limit=60, time_limit=90)
def sync_markets_task(self, sync_run_id: int | None = None) -> None:
    """Top coins and quotes: safe to repeat (upserts), never two at once."""
    with single_flight("market-sync:markets", ttl_s=120) as acquired:
        if not acquired:
            if sync_run_id:
                services.skip_run(sync_run_id, reason="another market sync was running")
            return
        try:
            services.sync_markets(run_id=sync_run_id, per_page=settings.MARKET_SYNC_TOP_N)
        except (CoinGeckoRateLimited, CallBudgetExhausted) as exc:
            raise _retry_later(self, exc) from exc


@shared_task(**RETRY, soft_time_limit=15 * 60, time_limit=16 * 60)
def backfill_history_task(self, sync_run_id: int | None = None) -> None:
    """Missing history for the top coins; queues behind the shared call budget."""
    with single_flight("market-sync:history", ttl_s=16 * 60) as acquired:
        if not acquired:
            if sync_run_id:
                services.skip_run(sync_run_id, reason="another history backfill was running")
            return
        try:
            services.backfill_history(run_id=sync_run_id)
        except (CoinGeckoRateLimited, CallBudgetExhausted) as exc:
            raise _retry_later(self, exc) from exc


@shared_task(**RETRY, soft_time_limit=60, time_limit=90)
def sync_trending_and_global_task(self, sync_run_id: int | None = None) -> None:
    with single_flight("market-sync:trending-global", ttl_s=120) as acquired:
        if not acquired:
            if sync_run_id:
                services.skip_run(sync_run_id, reason="another trending and global sync was running")
            return
        try:
            services.sync_trending_and_global(run_id=sync_run_id)
        except (CoinGeckoRateLimited, CallBudgetExhausted) as exc:
            raise _retry_later(self, exc) from exc


@shared_task(acks_late=True, soft_time_limit=30 * 60, time_limit=31 * 60)
def apply_retention_task() -> None:
    with single_flight("market-sync:retention", ttl_s=31 * 60) as acquired:
        if acquired:
            services.apply_retention()


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def demo_tick_task() -> None:
    """Demo prices take a random-walk step, then the same hooks as a sync (limit fills, alerts, paper runs).

    On with DEMO_TICKER (by default in the demo, DEBUG on); quotes from a real sync are never touched.
    """
    if not settings.DEMO_TICKER:
        return
    with single_flight("market-sync:demo-tick", ttl_s=60) as acquired:
        if acquired:
            services.demo_tick()


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def fetch_logos_task() -> None:
    """Logos the sync has not stored yet, fetched once into the app's own storage."""
    with single_flight("market-sync:logos", ttl_s=150) as acquired:
        if acquired:
            logos.fetch_missing_logos()
