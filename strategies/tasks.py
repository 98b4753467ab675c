"""Backtests run on workers: claimed once, time-limited, failures recorded on the row."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, soft_time_limit=300, time_limit=330)
def run_backtest_task(backtest_id: str) -> None:
    services.run_backtest(backtest_id)
