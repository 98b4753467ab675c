""" "Prices updated": published after a market write commits, in-process and over Redis pub/sub.

Portfolios and strategies subscribe in their AppConfig.ready(); market never imports them.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings

logger = logging.getLogger(__name__)

CHANNEL = "cryptodesk:prices-updated"


@dataclass(frozen=True)
class PricesUpdated:
    coin_ids: tuple[str, ...]
    as_of: datetime
    source: str


_subscribers: list[Callable[[PricesUpdated], None]] = []


def subscribe(handler: Callable[[PricesUpdated], None]) -> Callable[[PricesUpdated], None]:
    """Register a handler (usable as a decorator); registering the same one twice is a no-op."""
    if handler not in _subscribers:
        _subscribers.append(handler)
    return handler


def unsubscribe(handler: Callable[[PricesUpdated], None]) -> None:
    if handler in _subscribers:
        _subscribers.remove(handler)


def publish(event: PricesUpdated) -> None:
    """Tell every subscriber; one failing subscriber never stops the others or the sync."""
    for handler in list(_subscribers):
        try:
            handler(event)
        except Exception:
            logger.exception("prices-updated subscriber %s failed", getattr(handler, "__qualname__", handler))
    if settings.REDIS_URL:
        try:
            from django_redis import get_redis_connection

            message = json.dumps({**asdict(event), "coin_ids": list(event.coin_ids), "as_of": event.as_of.isoformat()})
            get_redis_connection("default").publish(CHANNEL, message)
        except Exception:
            logger.exception("could not publish prices-updated to Redis")
