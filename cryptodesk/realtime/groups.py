"""Channel-layer group names: one per coin for prices (and one for every coin), one per user for orders,
portfolio values and notifications, one per backtest."""

import re

ALL_PRICES = "prices.all"
# the channel layer accepts ASCII letters, digits, hyphens, underscores and periods, under 100 characters
_VALID = re.compile(r"^[A-Za-z0-9_.-]{1,90}$")


def prices(coin_id: str) -> str | None:
    """The group of one coin's prices, or None for an id no group can be named after."""
    name = f"prices.{coin_id}"
    return name if _VALID.match(name) else None


def user(user_id) -> str:
    """Every authenticated socket of the user: its orders (every socket passes them on), portfolio values and
    notifications (passed on where subscribed)."""
    return f"user.{int(user_id)}"


def backtest(backtest_id) -> str:
    return f"backtest.{backtest_id}"
