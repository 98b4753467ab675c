"""What the desk sends to the sockets, always after the write commits, so nothing that rolls back is announced.

- prices: the market's PricesUpdated hook (beside the limit fills and alerts), one message per coin to its group
  and to the every-coin group; then the values of the portfolios holding those coins whose owner is online;
- orders, portfolio values, notifications: portfolios' signals, to the owner's group;
- backtests: strategies' signal, to the backtest's group.

Sends run wherever the commit happened (a worker, a request thread, the in-process scheduler). With the
in-memory layer (one process, no Redis) the sockets live on the server's event loop: the send is handed to that
loop, the only one that may touch the layer's queues.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from cryptodesk.outbox import enqueue_now

from . import groups, selectors

logger = logging.getLogger(__name__)

# the consumer's handlers: price_update, order_update, portfolio_update, notification_update, backtest_update
PRICE_EVENT = "price.update"
ORDER_EVENT = "order.update"
PORTFOLIO_EVENT = "portfolio.update"
NOTIFICATION_EVENT = "notification.update"
BACKTEST_EVENT = "backtest.update"

_serving_loop: asyncio.AbstractEventLoop | None = None


def serving_loop_is(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop this process serves sockets on (the consumer tells it at each connect)."""
    global _serving_loop
    _serving_loop = loop


def send(envelopes: list[tuple[str, dict]]) -> None:
    """Send (group, event) pairs on the channel layer; a layer that is down loses them, never the caller's work."""
    layer = get_channel_layer()
    if layer is None or not envelopes:
        return
    loop = _serving_loop
    if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_send_all(layer, envelopes), loop)
        if _running_loop() is not loop:
            future.result(timeout=30)
        return
    if _running_loop() is None:
        async_to_sync(_send_all)(layer, envelopes)  # the usual case: a worker, a request thread, a command
        return
    # called from code that runs an event loop in this very thread: async_to_sync cannot, a short-lived thread can
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-publish") as executor:
        executor.submit(async_to_sync(_send_all), layer, envelopes).result(timeout=30)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _send_all(layer, envelopes: list[tuple[str, dict]]) -> None:
    try:
        for group, event in envelopes:
            await layer.group_send(group, event)
    except Exception:  # the layer is down: the writes stand all the same, sockets hear the next change
        logger.exception("could not send to the sockets")


# --- prices and the portfolio values they move -------------------------------------------------------


def on_prices_updated(event) -> None:
    """One message per coin to its group and to the every-coin group: a sync of 250 coins sends 500 at most."""
    messages = selectors.price_messages(event.coin_ids)
    envelopes = []
    for message in messages:
        envelope = {"type": PRICE_EVENT, "message": message}
        envelopes += [(group, envelope) for group in (groups.prices(message["coin"]), groups.ALL_PRICES) if group]
    send(envelopes)
    from .tasks import publish_portfolio_values_task

    enqueue_now(publish_portfolio_values_task, list(event.coin_ids))


def publish_portfolio_values(coin_ids) -> int:
    """The new values of the portfolios holding these coins, for owners with a socket open; returns how many."""
    portfolio_ids = selectors.watched_portfolios_holding(coin_ids)
    if portfolio_ids:
        publish_portfolios(portfolio_ids)
    return len(portfolio_ids)


def publish_portfolios(portfolio_ids) -> None:
    send(
        [
            (groups.user(owner_id), {"type": PORTFOLIO_EVENT, "message": message})
            for owner_id, message in selectors.portfolio_events(portfolio_ids)
        ]
    )


# --- portfolios' and strategies' signals: read again after commit, then sent ------------------------


def on_order_changed(sender, order, **kwargs) -> None:
    transaction.on_commit(partial(publish_order, order.pk), robust=True)


def publish_order(order_id) -> None:
    found = selectors.order_event(order_id)
    if found is not None:
        owner_id, portfolio_id, message = found
        send([(groups.user(owner_id), {"type": ORDER_EVENT, "portfolio": portfolio_id, "message": message})])


def on_portfolio_changed(sender, portfolio_id, **kwargs) -> None:
    transaction.on_commit(partial(publish_portfolios, [portfolio_id]), robust=True)


def on_notification_created(sender, notification, **kwargs) -> None:
    transaction.on_commit(partial(publish_notification, notification.pk), robust=True)


def publish_notification(notification_id) -> None:
    found = selectors.notification_event(notification_id)
    if found is not None:
        user_id, message = found
        send([(groups.user(user_id), {"type": NOTIFICATION_EVENT, "message": message})])


def on_backtest_changed(sender, backtest_ids, **kwargs) -> None:
    transaction.on_commit(partial(publish_backtests, list(backtest_ids)), robust=True)


def publish_backtests(backtest_ids) -> None:
    send(
        [
            (groups.backtest(backtest_id), {"type": BACKTEST_EVENT, "message": message})
            for backtest_id, message in selectors.backtest_messages(backtest_ids)
        ]
    )
