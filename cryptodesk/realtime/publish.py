"""Prices to the sockets, after commit: subscribed to market's PricesUpdated beside the fills and alerts."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import groups
from .selectors import price_messages

logger = logging.getLogger(__name__)

PRICE_EVENT = "price.update"  # the consumer's price_update handler


def on_prices_updated(event) -> None:
    """One message per coin to its group and to the every-coin group; a sync of 250 coins sends 500 at most.

    The hook fires after the price write commits, so a socket never hears a price that could roll back.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    messages = price_messages(event.coin_ids)
    if not messages:
        return
    send = async_to_sync(_send_all)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        send(layer, messages)  # the usual case: a worker, a request thread, a management command
        return
    # called from code that runs an event loop in this very thread: async_to_sync cannot, a short-lived thread can
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-publish") as executor:
        executor.submit(send, layer, messages).result(timeout=30)


async def _send_all(layer, messages: list[dict]) -> None:
    try:
        for message in messages:
            envelope = {"type": PRICE_EVENT, "message": message}
            for group in (groups.prices(message["coin"]), groups.ALL_PRICES):
                if group is not None:
                    await layer.group_send(group, envelope)
    except Exception:  # the layer is down: the prices are written all the same, sockets hear the next sync
        logger.exception("could not send prices to the sockets")
