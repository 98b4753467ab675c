from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    verbose_name = "Portfolios"

    def ready(self) -> None:
        from market import hooks

        hooks.subscribe(on_prices_updated)


def on_prices_updated(event) -> None:
    """After every committed price write: fill the limit orders it crossed, check the alerts it may trip."""
    from .tasks import evaluate_alerts_task, fill_limit_orders_task

    coin_ids = list(event.coin_ids)
    fill_limit_orders_task.delay(coin_ids)
    evaluate_alerts_task.delay(coin_ids)
