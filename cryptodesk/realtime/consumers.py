"""The `/ws/v1/` socket: auth, ping, subscriptions, and the messages the desk publishes (docs/realtime.md)."""

import asyncio
import json
import logging
import uuid

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import groups, publish
from .auth import TokenRejected, cookie_identity, session_is_live, token_identity
from .limits import MessageRate, claim_socket, release_socket
from .messages import error_message
from .selectors import owned_backtest, owns_portfolio, unknown_coin_ids

logger = logging.getLogger(__name__)

NOT_AUTHENTICATED = 4401
FORBIDDEN = 4403
AUTH_TIMEOUT = 4408
TOO_MANY = 4429
TOO_BIG = 1009  # RFC 6455 "message too big"

MESSAGE_TYPES = ("auth", "ping", "subscribe", "unsubscribe")
CHANNELS = ("prices", "portfolio", "notifications", "backtest")


class BadMessage(Exception):
    def __init__(self, detail: str, errors: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class DeskConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.user = None
        self.session_id: str | None = None
        self.counted = False
        self.closing = False
        self.joined: set[str] = set()
        self.coins: set[str] = set()
        self.all_prices = False
        self.portfolios: set[int] = set()
        self.backtests: set[str] = set()
        self.notifications = False
        # the newest undelivered message per coin, portfolio or backtest: a slow socket gets no backlog
        self.pending: dict[tuple[str, str], dict] = {}
        self.sent_as_of: dict[str, str] = {}
        self.flusher: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None
        self.rate = MessageRate(limit=settings.WS_MESSAGES_PER_WINDOW, window_s=settings.WS_MESSAGE_WINDOW_MS / 1000)
        publish.serving_loop_is(asyncio.get_running_loop())
        await self.accept()
        identity = await cookie_identity(self.scope)
        if identity is not None:
            await self._start_session(*identity)
        else:
            self.watcher = asyncio.create_task(self._close_unless_authenticated())

    # the channel layer's events: handled in memory (coalesced, passed on), never the database
    LAYER_EVENTS = frozenset(
        {publish.PRICE_EVENT, publish.ORDER_EVENT, publish.PORTFOLIO_EVENT, publish.NOTIFICATION_EVENT}
        | {publish.BACKTEST_EVENT}
    )

    async def dispatch(self, message) -> None:
        """Channels closes stale database connections on a thread before every handler: one thread hop per event,
        all sockets queued on one thread. A price to a thousand sockets is a thousand events; they skip it (the
        handlers that read the database go through database_sync_to_async, which does its own)."""
        if message["type"] in self.LAYER_EVENTS:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code) -> None:
        self.closing = True
        for task in (self.watcher, self.flusher):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for group in list(self.joined):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.joined.clear()
        if self.counted:
            self.counted = False
            await release_socket(self.user.pk)

    async def shut(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code)

    async def send_json(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    # --- client → server -------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closing:
            return
        data = text_data if text_data is not None else bytes_data or b""
        if len(data) > settings.WS_MAX_FRAME_BYTES:
            await self.shut(TOO_BIG)
            return
        if not self.rate.allow():
            await self.shut(TOO_MANY)
            return
        try:
            await self.handle(self.parse(text_data))
        except BadMessage as exc:
            await self.send_json(error_message(exc.detail, exc.errors))

    @staticmethod
    def parse(text_data: str | None) -> dict:
        if text_data is None:
            raise BadMessage("Send JSON text frames, not binary ones.")
        try:
            message = json.loads(text_data)
        except (ValueError, RecursionError):
            raise BadMessage("The message is not valid JSON.") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise BadMessage("A message is a JSON object with a string `type`.")
        return message

    async def handle(self, message: dict) -> None:
        kind = message["type"]
        if kind not in MESSAGE_TYPES:
            raise BadMessage(f"Unknown message type. Known types: {', '.join(MESSAGE_TYPES)}.", {"type": ["unknown"]})
        if kind == "auth":
            await self.authenticate(message)
        elif self.user is None:
            raise BadMessage('Authenticate first: send {"type": "auth", "token": "<access JWT>"}.')
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.change_subscription(message, join=kind == "subscribe")

    async def authenticate(self, message: dict) -> None:
        if self.user is not None:
            raise BadMessage("This socket is already authenticated.")
        try:
            user, session_id = await token_identity(message.get("token"))
        except TokenRejected:
            await self.shut(NOT_AUTHENTICATED)
            return
        if self.watcher is not None:
            self.watcher.cancel()
        if await self._start_session(user, session_id):
            await self.send_json({"type": "authenticated", "user": user.pk})

    async def change_subscription(self, message: dict, *, join: bool) -> None:
        channel = message.get("channel")
        if channel not in CHANNELS:
            raise BadMessage(f"Unknown channel. Channels: {', '.join(CHANNELS)}.", {"channel": ["unknown"]})
        now = None  # the state to send right after `subscribed`, for channels that have one
        if channel == "prices":
            reply = await self.change_prices(message.get("coins"), join=join)
        elif channel == "notifications":
            self.notifications = join
            reply = {}
        elif channel == "portfolio":
            reply = await self.change_portfolio(message.get("portfolio"), join=join)
        else:
            reply, now = await self.change_backtest(message.get("backtest"), join=join)
        await self.send_json({"type": "subscribed" if join else "unsubscribed", "channel": channel, **reply})
        if now is not None:
            await self.send_json(now)  # where it stands: a change just before the subscription is not missed

    async def change_prices(self, coins, *, join: bool) -> dict:
        if coins == "*":
            self.all_prices = join
            await self._group(groups.ALL_PRICES, join=join)
            return {"coins": "*"}
        if not isinstance(coins, list) or not coins or not all(isinstance(coin, str) for coin in coins):
            raise BadMessage('`coins` is a list of coin ids or "*".', {"coins": ['a list of coin ids or "*"']})
        coin_ids = list(dict.fromkeys(coins))
        if not join:
            for coin_id in coin_ids:
                if coin_id in self.coins:
                    self.coins.discard(coin_id)
                    await self._group(groups.prices(coin_id), join=False)
            return {"coins": coin_ids}
        limit = settings.WS_MAX_COINS
        if len(self.coins | set(coin_ids)) > limit:
            raise BadMessage(f"At most {limit} coins per socket.", {"coins": [f"at most {limit} coins"]})
        invalid = [coin_id for coin_id in coin_ids if groups.prices(coin_id) is None]
        unknown = invalid or await database_sync_to_async(unknown_coin_ids)(coin_ids)
        if unknown:
            shown = ", ".join(unknown[:20]) + (" …" if len(unknown) > 20 else "")
            raise BadMessage(f"Unknown coins: {shown}.", {"coins": [f"unknown coin: {coin_id}" for coin_id in unknown]})
        for coin_id in coin_ids:
            self.coins.add(coin_id)
            await self._group(groups.prices(coin_id), join=True)
        return {"coins": coin_ids}

    async def change_portfolio(self, portfolio_id, *, join: bool) -> dict:
        if not isinstance(portfolio_id, int) or isinstance(portfolio_id, bool) or portfolio_id <= 0:
            raise BadMessage("`portfolio` is a portfolio id.", {"portfolio": ["a portfolio id"]})
        if join and not await database_sync_to_async(owns_portfolio)(self.user, portfolio_id):
            raise BadMessage(
                "No such portfolio.", {"portfolio": ["not found"]}
            )  # others' are "not found", as in the API
        if join:
            self.portfolios.add(portfolio_id)  # its orders and values come through the owner's group
        else:
            self.portfolios.discard(portfolio_id)
        return {"portfolio": portfolio_id}

    async def change_backtest(self, backtest_id, *, join: bool) -> tuple[dict, dict | None]:
        try:
            backtest_id = str(uuid.UUID(backtest_id)) if isinstance(backtest_id, str) else None
        except ValueError:
            backtest_id = None
        if backtest_id is None:
            raise BadMessage("`backtest` is a backtest id.", {"backtest": ["a backtest id"]})
        if not join:
            self.backtests.discard(backtest_id)
            await self._group(groups.backtest(backtest_id), join=False)
            return {"backtest": backtest_id}, None
        now = await database_sync_to_async(owned_backtest)(self.user, backtest_id)
        if now is None:
            raise BadMessage("No such backtest.", {"backtest": ["not found"]})  # others' are "not found"
        self.backtests.add(backtest_id)
        await self._group(groups.backtest(backtest_id), join=True)
        return {"backtest": backtest_id}, now

    async def _group(self, group: str, *, join: bool) -> None:
        if join and group not in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.add(group)
        elif not join and group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.joined.discard(group)

    # --- auth and session ------------------------------------------------------------------------

    async def _start_session(self, user, session_id: str) -> bool:
        if not await claim_socket(user.pk):
            await self.shut(TOO_MANY)
            return False
        self.user, self.session_id, self.counted = user, session_id, True
        await self._group(groups.user(user.pk), join=True)
        self.watcher = asyncio.create_task(self._close_when_session_ends())
        return True

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(settings.WS_AUTH_TIMEOUT_MS / 1000)
        if self.user is None:
            await self.shut(AUTH_TIMEOUT)

    async def _close_when_session_ends(self) -> None:
        every_s = settings.WS_SESSION_CHECK_MS / 1000
        while not self.closing:
            await asyncio.sleep(every_s)
            if not await session_is_live(self.session_id):
                await self.shut(NOT_AUTHENTICATED)
                return

    # --- server → client (channel-layer events) --------------------------------------------------

    async def price_update(self, event: dict) -> None:
        message = event["message"]
        coin_id = message["coin"]
        if self.closing or not (self.all_prices or coin_id in self.coins):
            return
        if self.sent_as_of.get(coin_id, "") >= message["as_of"]:
            return  # heard through both its coin's group and the every-coin group, or older than one sent
        self._coalesce(("price", coin_id), message)

    async def portfolio_update(self, event: dict) -> None:
        message = event["message"]
        if not self.closing and message["portfolio"] in self.portfolios:
            self._coalesce(("portfolio", str(message["portfolio"])), message)

    async def backtest_update(self, event: dict) -> None:
        message = event["message"]
        if not self.closing and message["backtest"] in self.backtests:
            self._coalesce(("backtest", message["backtest"]), message)

    async def order_update(self, event: dict) -> None:
        if not self.closing:  # every order of the socket's user, whatever it subscribed to: a bot hears its fills
            await self.send_json(event["message"])  # every status change counts: never coalesced

    async def notification_update(self, event: dict) -> None:
        if not self.closing and self.notifications:
            await self.send_json(event["message"])

    def _coalesce(self, key: tuple[str, str], message: dict) -> None:
        self.pending[key] = message  # a newer message replaces one not yet delivered
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self.pending and not self.closing:
            key = next(iter(self.pending))
            message = self.pending.pop(key)
            if key[0] == "price":
                self.sent_as_of[key[1]] = message["as_of"]
            await self.send_json(message)
