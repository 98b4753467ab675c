"""Reads the socket needs: which coins exist, what a user owns, and the bodies of the messages it sends."""

from django.core.cache import cache
from django.utils import timezone

from market.models import Coin, Quote
from portfolios.api.serializers import NotificationSerializer, OrderSerializer
from portfolios.models import Holding, Notification, Order
from portfolios.selectors import cash_and_values, portfolios_for
from strategies.models import Backtest

from .limits import socket_count_key
from .messages import backtest_message, portfolio_message, price_message


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


def owned_backtest(user, backtest_id) -> dict | None:
    """The `backtest` message of the user's own backtest (its state now), or None for one not theirs."""
    row = Backtest.objects.filter(pk=backtest_id, owner=user).values_list("status", "progress").first()
    return backtest_message(backtest_id, *row) if row is not None else None


def backtest_messages(backtest_ids) -> list[tuple[object, dict]]:
    """(backtest id, its `backtest` message) for each id that still exists."""
    rows = Backtest.objects.filter(pk__in=list(backtest_ids)).values_list("pk", "status", "progress")
    return [(pk, backtest_message(pk, status, progress)) for pk, status, progress in rows]


def order_event(order_id) -> tuple[int, int, dict] | None:
    """(owner id, portfolio id, the `order` message as the API shows the order), or None once it is gone."""
    order = Order.objects.select_related("portfolio").filter(pk=order_id).first()
    if order is None:
        return None
    return order.portfolio.owner_id, order.portfolio_id, {"type": "order", "order": OrderSerializer(order).data}


def notification_event(notification_id) -> tuple[int, dict] | None:
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        return None
    return notification.user_id, {"type": "notification", "notification": NotificationSerializer(notification).data}


def portfolio_events(portfolio_ids) -> list[tuple[int, dict]]:
    """(owner id, `portfolio` message) for each portfolio: cash and total value now, in two queries."""
    now = timezone.now()
    return [
        (valuation.portfolio.owner_id, portfolio_message(valuation, as_of=now))
        for valuation in cash_and_values(portfolio_ids)
    ]


def watched_portfolios_holding(coin_ids) -> list[int]:
    """Portfolios holding any of the coins whose owner has a socket open now (one query, one cache read)."""
    rows = (
        Holding.objects.filter(coin_id__in=list(coin_ids), quantity__gt=0)
        .values_list("portfolio_id", "portfolio__owner_id")
        .distinct()
    )
    by_owner: dict[int, list[int]] = {}
    for portfolio_id, owner_id in rows:
        by_owner.setdefault(owner_id, []).append(portfolio_id)
    if not by_owner:
        return []
    counts = cache.get_many([socket_count_key(owner_id) for owner_id in by_owner])
    return sorted(
        portfolio_id
        for owner_id, portfolio_ids in by_owner.items()
        if (counts.get(socket_count_key(owner_id)) or 0) > 0
        for portfolio_id in portfolio_ids
    )
