"""Market cache refresh: after a market write commits, a new cache version, then "market data changed"."""

from django.core.cache import cache
from django.utils import timezone

from cryptodesk.timestamps import to_ms

from . import hooks
from .selectors import VERSION_KEY


def refresh_market_caches() -> str:
    """Old entries become unreachable at once; subscribers (the API's prewarm) rebuild the hot ones."""
    version = str(to_ms(timezone.now()))
    cache.set(VERSION_KEY, version, timeout=None)
    hooks.publish(hooks.MarketDataChanged(version=version))
    return version
