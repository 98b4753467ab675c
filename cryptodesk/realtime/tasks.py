"""Real-time jobs: the portfolio values a price write moved, off the sync's own path."""

from celery import shared_task

from . import publish


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90, ignore_result=True)
def publish_portfolio_values_task(coin_ids: list[str]) -> int:
    """Safe to repeat and to lose: it sends values as they are now, and the next price write sends them again."""
    return publish.publish_portfolio_values(coin_ids)
