"""Market API bodies shared by the views and the prewarm that rebuilds them after every market write."""

from cryptodesk.api.caching import cache_key, store
from market import hooks, selectors

from .serializers import EMPTY_GLOBAL_STATS, CoinSerializer, GlobalStatsSerializer, TrendingSerializer

# Rebuilt at most once a minute even without a sync: the `stale` flags age while no sync comes.
MARKET_CACHE_TTL_S = 60
PREWARMED_TOP_LIMIT = 10


def top_data(category: str, limit: int) -> list:
    return CoinSerializer(selectors.top_coins(category, limit=limit), many=True).data


def trending_data() -> list:
    return TrendingSerializer(selectors.trending_coins(), many=True).data


def global_data() -> dict:
    """The newest global figures, or an explicit empty state before the first sync."""
    stats = selectors.latest_global_stats()
    return GlobalStatsSerializer(stats).data if stats is not None else dict(EMPTY_GLOBAL_STATS)


def prewarm_market_caches(event: hooks.MarketDataChanged) -> None:
    """Build the hot, link-free responses once, right after a market write, so no request has to."""
    version = event.version
    modified = selectors.market_modified(version)
    for category in selectors.TOP_CATEGORIES:
        store(
            cache_key("top", version, variant=f"{category}:{PREWARMED_TOP_LIMIT}"),
            top_data(category, PREWARMED_TOP_LIMIT),
            modified=modified,
            ttl_s=MARKET_CACHE_TTL_S,
        )
    store(cache_key("trending", version), trending_data(), modified=modified, ttl_s=MARKET_CACHE_TTL_S)
    store(cache_key("global", version), global_data(), modified=modified, ttl_s=MARKET_CACHE_TTL_S)
