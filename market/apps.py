from django.apps import AppConfig


class MarketConfig(AppConfig):
    name = "market"
    verbose_name = "Market data"

    def ready(self) -> None:
        from . import hooks
        from .api.responses import prewarm_market_caches

        hooks.subscribe(prewarm_market_caches, event=hooks.MarketDataChanged)

    def seed_demo(self) -> list[str]:
        from .demo.snapshot import load_snapshot

        loaded = load_snapshot()
        if loaded is None:
            return ["Market data already present: left as it is."]
        return [f"Demo market loaded: {loaded['coins']} coins, {loaded['points']} history points (source: demo)."]
