from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "cryptodesk.realtime"
    label = "realtime"
    verbose_name = "Real time"

    def ready(self) -> None:
        from market import hooks
        from portfolios import signals as portfolio_signals
        from strategies import signals as strategy_signals

        from . import publish

        hooks.subscribe(publish.on_prices_updated)
        portfolio_signals.order_changed.connect(publish.on_order_changed, dispatch_uid="realtime-order")
        portfolio_signals.portfolio_changed.connect(publish.on_portfolio_changed, dispatch_uid="realtime-portfolio")
        portfolio_signals.notification_created.connect(
            publish.on_notification_created, dispatch_uid="realtime-notification"
        )
        strategy_signals.backtest_changed.connect(publish.on_backtest_changed, dispatch_uid="realtime-backtest")
