"""Market events published after a write commits: "prices updated" (also over Redis pub/sub) and
"market data changed" (a new cache version, in-process).

Portfolios and strategies subscribe in their AppConfig.ready(), the market API in market's; market's
services and selectors never import their subscribers.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "cryptodesk:prices-updated"


@dataclass(frozen=True)
class PricesUpdated:
    coin_ids: tuple[str, ...]
    as_of: datetime
    source: str


@dataclass(frozen=True)
class MarketDataChanged:
    """Market data changed and `version` is the new cache version: cached market responses may be rebuilt."""

    version: str


Event = PricesUpdated | MarketDataChanged
Handler = Callable[[Any], None]

_subscribers: dict[type, list[Handler]] = {PricesUpdated: [], MarketDataChanged: []}


def subscribe(handler: Handler, *, event: type = PricesUpdated) -> Handler:
    """Register a handler for one event type (prices updated unless told); registering it twice is a no-op."""
    handlers = _subscribers[event]
    if handler not in handlers:
        handlers.append(handler)
    return handler


def unsubscribe(handler: Handler, *, event: type = PricesUpdated) -> None:
    handlers = _subscribers[event]
    if handler in handlers:
        handlers.remove(handler)


def publish(event: Event) -> None:
    """Tell every subscriber of the event's type; one failing subscriber never stops the others or the sync."""
    for handler in list(_subscribers[type(event)]):
        try:
            handler(event)
        except Exception:
            logger.exception("%s subscriber %s failed", type(event).__name__, getattr(handler, "__qualname__", handler))
    if settings.REDIS_URL and isinstance(event, PricesUpdated):
        try:
            from django_redis import get_redis_connection

            message = json.dumps({**asdict(event), "coin_ids": list(event.coin_ids), "as_of": event.as_of.isoformat()})
            get_redis_connection("default").publish(CHANNEL, message)
        except Exception:
            logger.exception("could not publish prices-updated to Redis")
