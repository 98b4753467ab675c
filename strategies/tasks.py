"""Backtests and optimisations run on workers: claimed once, time-limited, failures recorded on the row."""

from celery import shared_task

from . import optimizations, services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,  # a killed worker's message goes back to the queue, not lost
    soft_time_limit=services.BACKTEST_TIME_LIMIT_S - 30,
    time_limit=services.BACKTEST_TIME_LIMIT_S,
)
def run_backtest_task(backtest_id: str) -> None:
    services.run_backtest(backtest_id)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=optimizations.OPTIMIZATION_TIME_LIMIT_S - 30,
    time_limit=optimizations.OPTIMIZATION_TIME_LIMIT_S,
)
def run_optimization_task(optimization_id: str) -> None:
    optimizations.run_optimization(optimization_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def reap_backtests_task() -> dict[str, int]:
    """Beat: backtests and optimisations left `running` by a worker that died are requeued once, then failed with
    the reason. Returns how many of each, both together."""
    backtests = services.reap_backtests()
    reaped = optimizations.reap_optimizations()
    return {outcome: backtests[outcome] + reaped[outcome] for outcome in ("requeued", "failed")}


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evaluate_paper_runs_task(coin_ids: list[str] | None = None) -> int:
    """After a sync: each active paper run acts on its newest bar once (orders carry an idempotency key)."""
    return services.evaluate_paper_runs(coin_ids=coin_ids)
