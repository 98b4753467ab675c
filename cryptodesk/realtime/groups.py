"""Channel-layer group names: one per coin for prices, one for every coin, one per user for notifications."""

import re

ALL_PRICES = "prices.all"
# the channel layer accepts ASCII letters, digits, hyphens, underscores and periods, under 100 characters
_VALID = re.compile(r"^[A-Za-z0-9_.-]{1,90}$")


def prices(coin_id: str) -> str | None:
    """The group of one coin's prices, or None for an id no group can be named after."""
    name = f"prices.{coin_id}"
    return name if _VALID.match(name) else None


def notifications(user_id) -> str:
    return f"notifications.{int(user_id)}"


def portfolio(portfolio_id) -> str:
    return f"portfolio.{int(portfolio_id)}"
