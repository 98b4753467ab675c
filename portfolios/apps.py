from django.apps import AppConfig


class PortfoliosConfig(AppConfig):
    name = "portfolios"
    verbose_name = "Portfolios"

    def ready(self) -> None:
        from market import hooks

        hooks.subscribe(on_prices_updated)

    def seed_demo(self) -> list[str]:
        from accounts.services import DEMO_EMAIL, ensure_demo_user

        from .services import seed_demo_portfolio, seed_demo_triggers

        user = ensure_demo_user()
        portfolio = seed_demo_portfolio(user=user)
        if portfolio is None:
            lines = [f"Demo portfolios of {DEMO_EMAIL}: left as they are."]
        else:
            lines = [f"Demo portfolio created for {DEMO_EMAIL}: {portfolio.name}, with a watchlist and an alert."]
        return lines + seed_demo_triggers(user=user)


def on_prices_updated(event) -> None:
    """After every committed price write: fill the limit orders it crossed, check the alerts it may trip."""
    from cryptodesk.outbox import enqueue_now

    from .tasks import evaluate_alerts_task, fill_limit_orders_task

    coin_ids = list(event.coin_ids)
    enqueue_now(fill_limit_orders_task, coin_ids)
    enqueue_now(evaluate_alerts_task, coin_ids)
