"""Reads the socket needs: which coins exist, the latest prices as messages, what a user owns."""

from market.models import Coin, Quote
from portfolios.selectors import portfolios_for

from .messages import price_message


def unknown_coin_ids(coin_ids: list[str]) -> list[str]:
    """The ids among `coin_ids` that name no coin, in the order given."""
    known = set(Coin.objects.filter(pk__in=coin_ids).values_list("pk", flat=True))
    return [coin_id for coin_id in coin_ids if coin_id not in known]


def price_messages(coin_ids) -> list[dict]:
    """One `price` message per coin that has a quote: one query whatever the count."""
    quotes = Quote.objects.filter(coin_id__in=list(coin_ids)).only(
        "coin_id", "current_price", "price_change_percentage_24h", "last_updated", "source"
    )
    return [price_message(quote) for quote in quotes]


def owns_portfolio(user, portfolio_id: int) -> bool:
    return portfolios_for(user).filter(pk=portfolio_id).exists()
