"""A real market sync fed from rows instead of CoinGecko: the write, the commit and the hooks are the real ones."""

from datetime import UTC, datetime
from decimal import Decimal

from market.coingecko import MarketRow
from market.services import sync_markets


def market_row(coin_id: str, price: str, change: str | None = None, *, minute: int = 0) -> MarketRow:
    return MarketRow(
        id=coin_id,
        symbol=coin_id[:3],
        name=coin_id.title(),
        image="",
        current_price=Decimal(price),
        market_cap=None,
        total_volume=None,
        price_change_percentage_24h=None if change is None else Decimal(change),
        market_cap_rank=1,
        high_24h=None,
        low_24h=None,
        last_updated=datetime(2026, 11, 22, 10, minute, tzinfo=UTC),
    )


class RowsProvider:
    """Stands in for the CoinGecko client: one page of the given rows."""

    calls = 1

    def __init__(self, rows: list[MarketRow]):
        self.rows = rows

    def markets(self, *, per_page: int):
        return self.rows, {}


def sync_rows(*rows: MarketRow) -> None:
    sync_markets(client=RowsProvider(list(rows)), follow_up=False)
