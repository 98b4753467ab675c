"""The socket's consumer in-process (asgiref's ApplicationCommunicator: channels' own testing package needs
daphne), on whichever channel layer is configured: the in-memory one of `make run`, or Redis.
"""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.db import transaction

from conftest import api_for, make_user
from cryptodesk.asgi import application
from cryptodesk.realtime.consumers import DeskConsumer
from cryptodesk.tests.market_sync import market_row, sync_rows

pytestmark = pytest.mark.django_db(transaction=True)


def run(scenario, *args):
    """Run an async scenario to its end from this sync test, on a thread of its own: the browser tests' driver
    may leave an event loop running in this one."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(async_to_sync(scenario), *args).result(timeout=30)


class Socket(ApplicationCommunicator):
    def __init__(self):
        scope = {"type": "websocket", "path": "/ws/v1/", "headers": [], "query_string": b"", "subprotocols": []}
        super().__init__(application, scope)

    async def connect(self) -> None:
        await self.send_input({"type": "websocket.connect"})
        assert (await self.receive_output(timeout=2))["type"] == "websocket.accept"

    async def send_json_to(self, message: dict) -> None:
        await self.send_input({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive_json_from(self) -> dict:
        event = await self.receive_output(timeout=2)
        assert event["type"] == "websocket.send", event
        return json.loads(event["text"])

    async def disconnect(self) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.wait(timeout=2)


async def _open(access: str) -> Socket:
    communicator = Socket()
    await communicator.connect()
    await communicator.send_json_to({"type": "auth", "token": access})
    assert (await communicator.receive_json_from())["type"] == "authenticated"
    return communicator


def test_prices_reach_the_socket_after_commit_and_never_from_a_rollback():
    user = make_user("carol@example.com")
    access = api_for(user).tokens.access
    sync_rows(market_row("bitcoin", "100", minute=0))

    async def scenario(sync) -> list[dict]:
        communicator = await _open(access)
        await communicator.send_json_to({"type": "subscribe", "channel": "prices", "coins": ["bitcoin"]})
        assert (await communicator.receive_json_from())["type"] == "subscribed"
        await sync()
        heard = []
        while not await communicator.receive_nothing(timeout=0.5):
            heard.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return heard

    def rolled_back() -> None:
        with transaction.atomic():
            sync_rows(market_row("bitcoin", "200", minute=1))
            transaction.set_rollback(True)

    from asgiref.sync import sync_to_async

    assert run(scenario, sync_to_async(rolled_back)) == []
    heard = run(scenario, sync_to_async(lambda: sync_rows(market_row("bitcoin", "300.5", minute=2))))
    assert heard == [
        {
            "type": "price",
            "coin": "bitcoin",
            "price": "300.5",
            "change_24h": None,
            "as_of": "2026-11-22T10:02:00Z",
            "source": "coingecko",
        }
    ]


def test_a_slow_socket_gets_the_newest_tick_per_coin_not_a_backlog():
    consumer = DeskConsumer()
    consumer.closing = False
    consumer.all_prices = True
    consumer.coins = set()
    consumer.pending = {}
    consumer.sent_as_of = {}
    consumer.flusher = None
    sent: list[tuple[str, str]] = []

    async def send_json(message: dict) -> None:
        sent.append((message["coin"], message["price"]))
        await asyncio.sleep(0)

    consumer.send_json = send_json

    def tick(coin: str, price: str, minute: int) -> dict:
        return {
            "type": "price.update",
            "message": {"coin": coin, "price": price, "as_of": f"2026-11-22T10:{minute:02}:00Z"},
        }

    async def scenario() -> None:
        for minute, price in enumerate(["1", "2", "3"]):
            await consumer.price_update(tick("bitcoin", price, minute))
        await consumer.price_update(tick("ethereum", "10", 0))
        await consumer.flusher
        await consumer.price_update(tick("bitcoin", "2", 1))  # older than the one delivered: dropped
        await consumer.price_update(tick("bitcoin", "4", 3))
        await consumer.flusher

    run(scenario)
    assert sent == [("bitcoin", "3"), ("ethereum", "10"), ("bitcoin", "4")]
    assert json.dumps(consumer.pending) == "{}"


def test_a_socket_passes_on_only_what_it_subscribed_to_from_its_owners_group():
    consumer = DeskConsumer()
    consumer.closing = False
    consumer.portfolios = {7}
    consumer.backtests = set()
    consumer.notifications = False
    consumer.pending = {}
    consumer.flusher = None
    sent: list[dict] = []

    async def send_json(message: dict) -> None:
        sent.append(message)

    consumer.send_json = send_json

    def value(portfolio: int, total: str) -> dict:
        return {
            "type": "portfolio.update",
            "message": {"type": "portfolio", "portfolio": portfolio, "total_value": total},
        }

    async def scenario() -> None:
        await consumer.order_update({"type": "order.update", "portfolio": 8, "message": {"type": "order", "n": 1}})
        await consumer.notification_update({"type": "notification.update", "message": {"type": "notification"}})
        for total in ["1", "2", "3"]:
            await consumer.portfolio_update(value(7, total))  # a burst: only the newest is delivered
        await consumer.portfolio_update(value(8, "9"))
        await consumer.flusher
        consumer.notifications = True
        await consumer.notification_update({"type": "notification.update", "message": {"type": "notification"}})

    run(scenario)
    assert sent == [
        {"type": "order", "n": 1},  # every order of the user, whichever portfolio
        {"type": "portfolio", "portfolio": 7, "total_value": "3"},
        {"type": "notification"},
    ]
