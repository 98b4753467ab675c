"""Server → client message bodies: money as exact decimal strings, times ISO 8601 UTC, as in the API."""

from datetime import UTC, datetime

from cryptodesk.money import as_str


def iso_utc(moment: datetime) -> str:
    """`2026-11-22T10:00:00Z`, as the API writes times."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def price_message(quote) -> dict:
    change = quote.price_change_percentage_24h
    return {
        "type": "price",
        "coin": quote.coin_id,
        "price": as_str(quote.current_price),
        "change_24h": as_str(change) if change is not None else None,
        "as_of": iso_utc(quote.last_updated),
        "source": quote.source,
    }


def error_message(detail: str, errors: dict | None = None) -> dict:
    message = {"type": "error", "detail": detail}
    if errors:
        message["errors"] = errors
    return message


def portfolio_message(valuation, *, as_of: datetime) -> dict:
    return {
        "type": "portfolio",
        "portfolio": valuation.portfolio.pk,
        "cash": as_str(valuation.cash),
        "total_value": as_str(valuation.total_value),
        "as_of": iso_utc(as_of),
    }


def backtest_message(backtest_id, status: str, progress: int) -> dict:
    return {"type": "backtest", "backtest": str(backtest_id), "status": status, "progress": progress}
