from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "cryptodesk.realtime"
    label = "realtime"
    verbose_name = "Real time"

    def ready(self) -> None:
        from market import hooks

        from .publish import on_prices_updated

        hooks.subscribe(on_prices_updated)
