from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        from market import hooks

        hooks.subscribe(on_prices_updated)

    def seed_demo(self) -> list[str]:
        from accounts.services import ensure_demo_user

        from .services import seed_demo_paper_run, seed_demo_strategies

        trader = ensure_demo_user()
        lines = seed_demo_strategies(trader=trader) or ["Demo strategies: left as they are."]
        return lines + seed_demo_paper_run(trader=trader)


def on_prices_updated(event) -> None:
    """After every committed price write: strategies trading on paper look at their newest bar."""
    from cryptodesk.outbox import enqueue_now

    from .tasks import evaluate_paper_runs_task

    enqueue_now(evaluate_paper_runs_task, list(event.coin_ids))
