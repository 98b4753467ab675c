"""The `/ws/v1/` socket through a real ASGI server (uvicorn) on the Redis channel layer, against the test database."""

import contextlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client as DjangoClient
from django.urls import reverse
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import revoke_sessions
from conftest import PASSWORD, api_for, make_user
from cryptodesk.money import as_str
from cryptodesk.tests.asgi_server import asgi_server
from cryptodesk.tests.market_sync import market_row, sync_rows
from portfolios import services
from portfolios.models import Alert, Notification, Portfolio
from strategies.models import Backtest, Strategy
from strategies.services import run_backtest

pytestmark = [
    pytest.mark.skipif(
        not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="the socket server runs in its own process: it needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]

AUTH_TIMEOUT_MS = 500
SESSION_CHECK_MS = 300
MESSAGES_PER_WINDOW = 20
MAX_SOCKETS = 10


@pytest.fixture(scope="module")
def ws_server(django_db_setup, django_db_blocker):
    environ = {
        "WS_AUTH_TIMEOUT_MS": str(AUTH_TIMEOUT_MS),
        "WS_SESSION_CHECK_MS": str(SESSION_CHECK_MS),
        "WS_MESSAGES_PER_WINDOW": str(MESSAGES_PER_WINDOW),
        "WS_MAX_SOCKETS_PER_USER": str(MAX_SOCKETS),
    }
    with asgi_server(environ=environ) as server:
        yield {**server, "url": server["ws"]}


def _ask(ws, message: dict, *, timeout: float = 2) -> dict:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=timeout))


def _close_code(ws, *, timeout: float = 3) -> int:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=deadline - time.monotonic())
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else closed.sent.code
    except TimeoutError:
        pass
    pytest.fail("the socket stayed open")


@contextlib.contextmanager
def _token_socket(ws_server, user, **options):
    access = api_for(user).tokens.access
    with connect(ws_server["url"], open_timeout=5, **options) as ws:
        assert _ask(ws, {"type": "auth", "token": access}) == {"type": "authenticated", "user": user.pk}
        yield ws


@pytest.fixture
def alice():
    return make_user("alice@example.com", display_name="Alice", email_verified=True)


@pytest.fixture
def bob():
    return make_user("bob@example.com", display_name="Bob", email_verified=True)


@pytest.fixture
def coins():
    sync_rows(market_row("bitcoin", "86000.5", "1.25"), market_row("ethereum", "3000", "-2.5"))


def test_token_auth_then_ping_pong(ws_server, alice):
    with _token_socket(ws_server, alice) as ws:
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}


def test_no_auth_in_time_closes_4408(ws_server):
    with connect(ws_server["url"], open_timeout=5) as ws:
        started = time.monotonic()
        assert _close_code(ws) == 4408
        assert time.monotonic() - started < AUTH_TIMEOUT_MS / 1000 + 1


def test_messages_before_auth_are_refused(ws_server):
    with connect(ws_server["url"], open_timeout=5) as ws:
        reply = _ask(ws, {"type": "ping"})
        assert reply["type"] == "error"
        assert "Authenticate first" in reply["detail"]


def test_bad_token_closes_4401(ws_server, alice):
    with connect(ws_server["url"], open_timeout=5) as ws:
        ws.send(json.dumps({"type": "auth", "token": "not-a-jwt"}))
        assert _close_code(ws) == 4401


def test_revoked_session_token_closes_4401(ws_server, alice):
    client = api_for(alice)
    revoke_sessions(user=alice, reason="test", only_id=client.tokens.session.pk)
    with connect(ws_server["url"], open_timeout=5) as ws:
        ws.send(json.dumps({"type": "auth", "token": client.tokens.access}))
        assert _close_code(ws) == 4401


def _browser_cookie(ws_server, user) -> str:
    browser = DjangoClient(HTTP_HOST=urlsplit(ws_server["origin"]).netloc)
    response = browser.post(reverse("accounts:login"), {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_session_cookie_from_this_site_authenticates(ws_server, alice):
    cookie = _browser_cookie(ws_server, alice)
    with connect(
        ws_server["url"], origin=ws_server["origin"], additional_headers={"Cookie": cookie}, open_timeout=5
    ) as ws:
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}


def test_session_cookie_from_a_foreign_origin_is_not_honoured(ws_server, alice):
    cookie = _browser_cookie(ws_server, alice)
    with connect(
        ws_server["url"], origin="http://evil.example", additional_headers={"Cookie": cookie}, open_timeout=5
    ) as ws:
        reply = _ask(ws, {"type": "ping"})
        assert reply["type"] == "error"
        assert "Authenticate first" in reply["detail"]
        assert _close_code(ws) == 4408


def test_revoking_the_session_closes_the_socket_4401(ws_server, alice):
    client = api_for(alice)
    with _token_socket(ws_server, alice) as other, connect(ws_server["url"], open_timeout=5) as ws:
        assert _ask(ws, {"type": "auth", "token": client.tokens.access})["type"] == "authenticated"
        revoke_sessions(user=alice, reason="test", only_id=client.tokens.session.pk)
        started = time.monotonic()
        assert _close_code(ws, timeout=6) == 4401
        assert time.monotonic() - started < 5
        assert _ask(other, {"type": "ping"}) == {"type": "pong"}  # another session of hers lives on


def test_price_heard_within_a_second_of_a_committedsync_rows(ws_server, alice, coins):
    with _token_socket(ws_server, alice) as ws:
        assert _ask(ws, {"type": "subscribe", "channel": "prices", "coins": ["bitcoin"]}) == {
            "type": "subscribed",
            "channel": "prices",
            "coins": ["bitcoin"],
        }
        started = time.monotonic()
        sync_rows(
            market_row("bitcoin", "87000.12345678", "2.5", minute=5), market_row("ethereum", "3100", "1", minute=5)
        )
        message = json.loads(ws.recv(timeout=1))
        assert time.monotonic() - started < 1
        assert message == {
            "type": "price",
            "coin": "bitcoin",
            "price": "87000.12345678",
            "change_24h": "2.5",
            "as_of": "2026-11-22T10:05:00Z",
            "source": "coingecko",
        }
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # ethereum was not asked for


def test_every_coin_subscription_hears_each_coin_once(ws_server, alice, coins):
    with _token_socket(ws_server, alice) as ws:
        assert _ask(ws, {"type": "subscribe", "channel": "prices", "coins": "*"})["coins"] == "*"
        assert _ask(ws, {"type": "subscribe", "channel": "prices", "coins": ["bitcoin"]})["type"] == "subscribed"
        sync_rows(market_row("bitcoin", "1", "0", minute=10), market_row("ethereum", "2", "0", minute=10))
        heard = [json.loads(ws.recv(timeout=1)) for _ in range(2)]
        assert sorted(message["coin"] for message in heard) == ["bitcoin", "ethereum"]
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # bitcoin is in two groups, but is heard once
        assert _ask(ws, {"type": "unsubscribe", "channel": "prices", "coins": "*"})["type"] == "unsubscribed"


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ("this is not json", "not valid JSON"),
        (json.dumps({"type": "launch"}), "Unknown message type"),
        (json.dumps([1, 2]), "JSON object"),
        (json.dumps({"type": "subscribe", "channel": "prices", "coins": ["bitcoin", "no-such-coin"]}), "no-such-coin"),
        (
            json.dumps({"type": "subscribe", "channel": "prices", "coins": [f"c{i}" for i in range(1000)]}),
            "At most 250",
        ),
        (json.dumps({"type": "subscribe", "channel": "prices", "coins": "bitcoin"}), "list of coin ids"),
        (json.dumps({"type": "subscribe", "channel": "weather"}), "Unknown channel"),
        ("[" * 5000 + "]" * 5000, "not valid JSON"),
    ],
)
def test_bad_messages_answer_an_error_and_the_socket_stays_open(ws_server, alice, coins, frame, detail):
    with _token_socket(ws_server, alice) as ws:
        ws.send(frame)
        reply = json.loads(ws.recv(timeout=2))
        assert reply["type"] == "error"
        assert detail in reply["detail"]
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}


def test_unknown_coins_are_named_and_nothing_is_subscribed(ws_server, alice, coins):
    with _token_socket(ws_server, alice) as ws:
        reply = _ask(ws, {"type": "subscribe", "channel": "prices", "coins": ["bitcoin", "dogecoin2"]})
        assert reply["errors"] == {"coins": ["unknown coin: dogecoin2"]}
        sync_rows(market_row("bitcoin", "5", "0", minute=30))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)


def test_a_ten_megabyte_frame_closes_1009(ws_server, alice):
    with _token_socket(ws_server, alice, max_size=None) as ws:
        ws.send("x" * (10 * 1024 * 1024))
        assert _close_code(ws, timeout=10) == 1009


def test_binary_frames_answer_an_error(ws_server, alice):
    with _token_socket(ws_server, alice) as ws:
        ws.send(b'{"type": "ping"}')
        reply = json.loads(ws.recv(timeout=2))
        assert reply == {"type": "error", "detail": "Send JSON text frames, not binary ones."}
        assert _ask(ws, {"type": "ping"}) == {"type": "pong"}


def test_the_eleventh_socket_of_a_user_closes_4429(ws_server, alice):
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(_token_socket(ws_server, alice)) for _ in range(MAX_SOCKETS)]
        with connect(ws_server["url"], open_timeout=5) as extra:
            extra.send(json.dumps({"type": "auth", "token": api_for(alice).tokens.access}))
            assert _close_code(extra) == 4429
        sockets[0].close()
        time.sleep(0.3)  # the server hears the close and gives the place back
        with _token_socket(ws_server, alice) as again:
            assert _ask(again, {"type": "ping"}) == {"type": "pong"}


def test_a_message_flood_closes_4429(ws_server, alice):
    with _token_socket(ws_server, alice) as ws:  # the auth message counts as one
        for _ in range(MESSAGES_PER_WINDOW - 1):
            assert _ask(ws, {"type": "ping"}) == {"type": "pong"}
        ws.send(json.dumps({"type": "ping"}))
        assert _close_code(ws) == 4429


def test_portfolio_subscription_is_for_its_owner_only(ws_server, alice, bob):
    mine = Portfolio.objects.create(owner=alice, name="Main", starting_cash=Decimal(1000), cash=Decimal(1000))
    theirs = Portfolio.objects.create(owner=bob, name="Bob's", starting_cash=Decimal(1000), cash=Decimal(1000))
    with _token_socket(ws_server, alice) as ws:
        reply = _ask(ws, {"type": "subscribe", "channel": "portfolio", "portfolio": theirs.pk})
        assert reply == {"type": "error", "detail": "No such portfolio.", "errors": {"portfolio": ["not found"]}}
        reply = _ask(ws, {"type": "subscribe", "channel": "portfolio", "portfolio": mine.pk})
        assert reply == {"type": "subscribed", "channel": "portfolio", "portfolio": mine.pk}
        reply = _ask(ws, {"type": "subscribe", "channel": "notifications"})
        assert reply == {"type": "subscribed", "channel": "notifications"}


def _until(ws, wanted, *, timeout: float = 3) -> dict:
    """The first message `wanted(message)` accepts, within `timeout` seconds; those before it are passed over."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        except TimeoutError:
            break
        if wanted(message):
            return message
        seen.append(message)
    pytest.fail(f"not heard within {timeout} s; heard: {seen}")


def _silent(ws, unwanted, *, for_s: float = 0.5) -> None:
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        try:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
        except TimeoutError:
            return
        assert not unwanted(message), message


def _portfolio(user, cash="100000"):
    return services.create_portfolio(owner=user, name="Main", starting_cash=Decimal(cash))


def _limit_buy(user, portfolio, coin_id: str, quantity: str, *, at: str):
    return services.place_order(
        user=user,
        portfolio_id=portfolio.pk,
        coin_id=coin_id,
        side="buy",
        type="limit",
        quantity=Decimal(quantity),
        limit_price=Decimal(at),
    )


def _is(kind: str, **fields):
    def wanted(message: dict) -> bool:
        body = message.get(kind) if isinstance(message.get(kind), dict) else message
        return message["type"] == kind and all(body.get(name) == value for name, value in fields.items())

    return wanted


def test_a_limit_order_filled_by_a_sync_is_heard_with_the_new_portfolio_value(ws_server, alice, bob, coins):
    mine, theirs = _portfolio(alice), _portfolio(bob)
    with _token_socket(ws_server, alice) as ws, _token_socket(ws_server, bob) as other:
        assert _ask(ws, {"type": "subscribe", "channel": "portfolio", "portfolio": mine.pk})["type"] == "subscribed"
        assert (
            _ask(other, {"type": "subscribe", "channel": "portfolio", "portfolio": theirs.pk})["type"] == "subscribed"
        )
        assert _ask(other, {"type": "subscribe", "channel": "notifications"})["type"] == "subscribed"
        order, _ = _limit_buy(alice, mine, "bitcoin", "0.5", at="80000")
        placed = _until(ws, _is("order", id=str(order.pk)))
        assert placed["order"]["status"] == "open"
        assert placed["order"]["limit_price"] == "80000"
        started = time.monotonic()
        sync_rows(market_row("bitcoin", "79000", "-8", minute=20))
        filled = _until(ws, _is("order", id=str(order.pk), status="filled"), timeout=1)
        assert time.monotonic() - started < 1
        assert filled["order"]["filled_price"] == "79000"  # a buy limit fills at the better market price
        assert filled["order"]["portfolio"] == mine.pk
        mine.refresh_from_db()
        value = _until(ws, _is("portfolio", portfolio=mine.pk, cash=as_str(mine.cash)))
        assert Decimal(value["total_value"]) == mine.cash + Decimal("0.5") * Decimal("79000")
        assert value["as_of"].endswith("Z")
        _silent(other, lambda message: message["type"] in {"order", "portfolio", "notification"})


def test_a_price_write_sends_the_value_of_each_portfolio_holding_the_coin(ws_server, alice, coins):
    mine = _portfolio(alice)
    _limit_buy(alice, mine, "ethereum", "2", at="3000")  # fills at once: the market is at its limit
    mine.refresh_from_db()
    assert mine.holdings.get(coin_id="ethereum").quantity == 2
    with _token_socket(ws_server, alice) as ws:
        assert _ask(ws, {"type": "subscribe", "channel": "portfolio", "portfolio": mine.pk})["type"] == "subscribed"
        sync_rows(market_row("ethereum", "3500.25", "3", minute=25))
        value = _until(ws, _is("portfolio", portfolio=mine.pk), timeout=1)
        assert value["cash"] == as_str(mine.cash)
        assert Decimal(value["total_value"]) == mine.cash + Decimal("7000.5")
        assert _ask(ws, {"type": "unsubscribe", "channel": "portfolio", "portfolio": mine.pk})["type"] == "unsubscribed"
        sync_rows(market_row("ethereum", "3600", "3", minute=26))
        _silent(ws, lambda message: message["type"] == "portfolio")


def test_a_crossed_alert_is_heard_as_a_notification_by_its_owner_only(ws_server, alice, bob, coins):
    services.save_alert(owner=alice, coin_id="bitcoin", condition=Alert.Condition.PRICE_ABOVE, threshold=Decimal(90000))
    with _token_socket(ws_server, alice) as ws, _token_socket(ws_server, bob) as other:
        assert _ask(ws, {"type": "subscribe", "channel": "notifications"})["type"] == "subscribed"
        assert _ask(other, {"type": "subscribe", "channel": "notifications"})["type"] == "subscribed"
        sync_rows(market_row("bitcoin", "90001", "4", minute=40))
        heard = _until(ws, _is("notification"), timeout=1)
        notification = Notification.objects.get(user=alice)
        assert heard["notification"]["id"] == notification.pk
        assert heard["notification"]["title"] == notification.title
        assert heard["notification"]["is_read"] is False
        _silent(other, lambda message: message["type"] == "notification")


def test_without_a_notifications_subscription_nothing_of_them_is_heard(ws_server, alice, coins):
    services.save_alert(owner=alice, coin_id="bitcoin", condition=Alert.Condition.PRICE_BELOW, threshold=Decimal(1000))
    with _token_socket(ws_server, alice) as ws:
        sync_rows(market_row("bitcoin", "999", "-90", minute=41))
        assert Notification.objects.filter(user=alice).count() == 1
        _silent(ws, lambda message: message["type"] == "notification")


def _backtest(user) -> Backtest:
    strategy = Strategy.objects.create(
        owner=user,
        name="Cross",
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        coin_id="bitcoin",
        timeframe="1d",
    )
    return Backtest.objects.create(
        strategy=strategy,
        owner=user,
        kind=strategy.kind,
        params=strategy.params,
        coin_id="bitcoin",
        timeframe="1d",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 6, 1, tzinfo=UTC),
        initial_capital=Decimal(10000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )


def test_backtest_progress_is_heard_by_its_owner_from_where_it_stands(ws_server, alice, bob, coins):
    backtest, foreign = _backtest(alice), _backtest(bob)
    with _token_socket(ws_server, alice) as ws:
        reply = _ask(ws, {"type": "subscribe", "channel": "backtest", "backtest": str(foreign.pk)})
        assert reply == {"type": "error", "detail": "No such backtest.", "errors": {"backtest": ["not found"]}}
        reply = _ask(ws, {"type": "subscribe", "channel": "backtest", "backtest": "12"})
        assert reply["errors"] == {"backtest": ["a backtest id"]}
        reply = _ask(ws, {"type": "subscribe", "channel": "backtest", "backtest": str(backtest.pk)})
        assert reply == {"type": "subscribed", "channel": "backtest", "backtest": str(backtest.pk)}
        now = json.loads(ws.recv(timeout=1))
        assert now == {"type": "backtest", "backtest": str(backtest.pk), "status": "queued", "progress": 0}
        run_backtest(backtest.pk)  # no stored history: it runs, then fails with the reason
        done = _until(ws, _is("backtest", status="failed"), timeout=1)
        assert done["backtest"] == str(backtest.pk)
        run_backtest(foreign.pk)
        _silent(ws, lambda message: message.get("backtest") == str(foreign.pk))


def test_an_order_cancelled_over_the_api_is_heard_without_any_subscription(ws_server, alice, bob, coins):
    mine = _portfolio(alice)
    order, _ = _limit_buy(alice, mine, "bitcoin", "0.001", at="50000")
    with _token_socket(ws_server, alice) as ws, _token_socket(ws_server, bob) as other:
        response = api_for(alice).post(f"/api/v1/orders/{order.pk}/cancel")
        assert response.status_code == 200, response.content
        heard = _until(ws, _is("order", id=str(order.pk)), timeout=1)
        assert heard["order"] == response.json()  # as the API shows it
        assert heard["order"]["status"] == "cancelled"
        _silent(other, lambda message: message["type"] == "order")
