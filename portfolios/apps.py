from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    verbose_name = "Portfolios"

    def ready(self) -> None:
        from market import hooks

        hooks.subscribe(on_prices_updated)

    def seed_demo(self) -> list[str]:
        from accounts.services import DEMO_EMAIL, ensure_demo_user

        from .services import seed_demo_portfolio

        portfolio = seed_demo_portfolio(user=ensure_demo_user())
        if portfolio is None:
            return [f"Demo portfolios of {DEMO_EMAIL}: left as they are."]
        return [f"Demo portfolio created for {DEMO_EMAIL}: {portfolio.name}, with a watchlist and an alert."]


def on_prices_updated(event) -> None:
    """After every committed price write: fill the limit orders it crossed, check the alerts it may trip."""
    from cryptodesk.outbox import enqueue_now

    from .tasks import evaluate_alerts_task, fill_limit_orders_task

    coin_ids = list(event.coin_ids)
    enqueue_now(fill_limit_orders_task, coin_ids)
    enqueue_now(evaluate_alerts_task, coin_ids)
