"""The `/ws/v1/` socket through a real ASGI server (uvicorn) on the Redis channel layer, against the test database."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as DjangoClient
from django.urls import reverse
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import revoke_sessions
from conftest import PASSWORD, api_for, make_user
from cryptodesk.tests.market_sync import market_row, sync_rows
from portfolios.models import Portfolio

BASE_DIR = Path(settings.BASE_DIR)

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _test_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@pytest.fixture(scope="module")
def ws_server(django_db_setup, django_db_blocker):
    """uvicorn serving cryptodesk.asgi on a free port, reading the test database this run made."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DATABASE_URL": _test_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",  # the test database is flushed after each test: hold no connection open
        "WS_AUTH_TIMEOUT_MS": str(AUTH_TIMEOUT_MS),
        "WS_SESSION_CHECK_MS": str(SESSION_CHECK_MS),
        "WS_MESSAGES_PER_WINDOW": str(MESSAGES_PER_WINDOW),
        "WS_MAX_SOCKETS_PER_USER": str(MAX_SOCKETS),
    }
    command = [
        *(sys.executable, "-m", "uvicorn", "cryptodesk.asgi:application"),
        *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log"),
        *("--ws", "websockets-sansio", "--ws-max-size", str(16 * 1024 * 1024)),
    ]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cryptodesk-ws-{port}.log"  # noqa: S108
    with log_path.open("w+") as log:
        server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(f"uvicorn did not start:\n{log.read()}")
                    time.sleep(0.1)
            yield {"url": f"ws://127.0.0.1:{port}/ws/v1/", "origin": f"http://127.0.0.1:{port}", "log": log_path}
        finally:
            server.terminate()
            server.wait(timeout=10)
    log_text = log_path.read_text()
    log_path.unlink()
    assert "Traceback" not in log_text, log_text  # bad input never crashes a handler nor logs a traceback


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
