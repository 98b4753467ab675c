"""Portfolio jobs: limit fills and alerts after each price update, daily snapshots."""

from celery import shared_task

from cryptodesk.locks import single_flight

from . import services


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def fill_limit_orders_task(coin_ids: list[str] | None = None) -> int:
    """Safe to repeat: each fill re-checks the order is still open under the portfolio lock."""
    return services.fill_limit_orders(coin_ids=coin_ids)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evaluate_alerts_task(coin_ids: list[str] | None = None) -> int:
    """Safe to repeat: an alert fires only on the transition its conditional update claims."""
    return services.evaluate_alerts(coin_ids=coin_ids)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def take_snapshot_task(portfolio_id: int) -> None:
    """After a trade or transfer commits: today's value, off the request path when a worker runs."""
    services.take_snapshot(portfolio_id=portfolio_id)


@shared_task(acks_late=True, soft_time_limit=30 * 60, time_limit=31 * 60)
def snapshot_portfolios_task() -> int:
    with single_flight("portfolios:snapshots", ttl_s=31 * 60) as acquired:
        return services.snapshot_all_portfolios() if acquired else 0
