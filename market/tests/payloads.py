"""CoinGecko-shaped answers for tests, built from a few parameters."""

from datetime import UTC, datetime

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def market_row(
    coin_id: str, symbol: str, price, *, rank: int = 1, cap=None, volume=None, change=1.5, updated=NOW
) -> dict:
    return {
        "id": coin_id,
        "symbol": symbol,
        "name": coin_id.replace("-", " ").title(),
        "image": f"https://coin-images.example/{coin_id}.png",
        "current_price": price,
        "market_cap": cap if cap is not None else (price * 1000 if price is not None else None),
        "market_cap_rank": rank,
        "total_volume": volume if volume is not None else 500,
        "high_24h": price,
        "low_24h": price,
        "price_change_percentage_24h": change,
        "last_updated": updated.isoformat().replace("+00:00", "Z"),
        "sparkline_in_7d": {"price": [price, price, price] if price is not None else []},
    }


def markets(count: int = 3, *, updated=NOW) -> list[dict]:
    return [market_row(f"coin-{i}", f"c{i}", 10 * i, rank=i, updated=updated) for i in range(1, count + 1)]


def chart(points: list[tuple[int, float]]) -> dict:
    return {
        "prices": [[ms, price] for ms, price in points],
        "market_caps": [[ms, price * 1000] for ms, price in points],
        "total_volumes": [[ms, 42] for ms, _ in points],
    }


TRENDING = {
    "coins": [
        {
            "item": {
                "id": "coin-2",
                "coin_id": 2,
                "name": "Coin 2",
                "symbol": "C2",
                "market_cap_rank": 2,
                "large": "",
                "score": 0,
            }
        },
        {
            "item": {
                "id": "newcoin",
                "coin_id": 9,
                "name": "New Coin",
                "symbol": "NEW",
                "market_cap_rank": None,
                "large": "",
                "score": 1,
            }
        },
    ]
}

GLOBAL = {
    "data": {
        "active_cryptocurrencies": 15000,
        "total_market_cap": {"usd": 3100000000000.5, "eur": 1},
        "total_volume": {"usd": 120000000000},
        "market_cap_percentage": {"btc": 56.12345678, "eth": 11.5},
        "market_cap_change_percentage_24h_usd": -1.25,
        "updated_at": 1795341600,
    }
}
