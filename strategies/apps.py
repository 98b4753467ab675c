from django.apps import AppConfig


class StrategiesConfig(AppConfig):
    name = "strategies"
    verbose_name = "Strategies"

    def ready(self) -> None:
        from market import hooks

        hooks.subscribe(on_prices_updated)


def on_prices_updated(event) -> None:
    """After every committed price write: strategies trading on paper look at their newest bar."""
    from .tasks import evaluate_paper_runs_task

    evaluate_paper_runs_task.delay(list(event.coin_ids))
