"""Market reads for pages, endpoints and probes."""


def market_data_status() -> dict:
    """Freshness of the stored market data, for /health/ready (stale data is reported, never a 503)."""
    return {"ok": False, "last_sync": None, "age_s": None, "detail": "no market data synced yet"}
