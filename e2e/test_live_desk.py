"""The live desk in a browser on a real ASGI server: pages follow the `/ws/v1/` socket without a reload, say so in
the header, and under WSGI poll as before without ever trying a socket."""

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from conftest import PASSWORD, make_user
from cryptodesk.tests.asgi_server import asgi_server
from cryptodesk.tests.market_sync import market_row, sync_rows
from market.templatetags.market_tags import percent, price
from portfolios import selectors, services
from portfolios.models import Alert, Portfolio
from portfolios.templatetags.portfolio_tags import money
from strategies import signals
from strategies.models import Backtest, Strategy

from .conftest import PageGuard, guarded_page, log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIVE = "Live"
POLLING = "Offline, refreshing every minute"
MARK_PAGE = "() => { window.__noReload = 1; }"
NOT_RELOADED = "() => window.__noReload === 1"
LIVE_SCRIPT = "/static/js/live.js"
# The chart's slot at a logical index: its point, or null for a gap (a slot with a time and no value).
SLOT = "(el, index) => window.CryptoDeskCharts.chartFor(el).series[0].dataByIndex(index)"


@pytest.fixture(scope="module")
def desk_server(django_db_setup, django_db_blocker) -> Iterator[dict]:
    """uvicorn serving the desk with its static files; the tests using it skip where it cannot run."""
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip(
            "the socket server runs in its own process: it needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)"
        )
    with asgi_server(application="e2e.asgi_app:application", factory=True) as server:
        yield server


@pytest.fixture
def desk_guard(desk_server) -> PageGuard:
    return PageGuard(origin=desk_server["origin"])


@pytest.fixture
def desk_page(browser: Browser, desk_server, desk_guard: PageGuard) -> Iterator[Page]:
    with guarded_page(browser, desk_server["url"], desk_guard) as page:
        yield page


@pytest.fixture
def alice():
    return make_user("alice@example.com", display_name="Alice", email_verified=True)


@pytest.fixture
def coins():
    sync_rows(market_row("bitcoin", "86000.5", "-1.25"), market_row("ethereum", "3000", "2.5"))


def sockets_of(page: Page) -> list[str]:
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def expect_live(page: Page) -> None:
    expect(page.get_by_test_id("live-status")).to_have_text(LIVE)
    expect(page.get_by_test_id("live-status")).to_have_attribute("role", "status")


def coin_row(page: Page, name: str):
    return page.get_by_test_id("coin-table").locator("tbody tr").filter(has=page.locator(".coin-name", has_text=name))


def test_the_markets_table_follows_a_sync_without_a_reload(desk_page: Page, desk_guard: PageGuard, alice, coins):
    page = desk_page
    log_in(page, alice.email, PASSWORD)
    expect_live(page)  # the dashboard's own socket
    opened = sockets_of(page)
    page.goto("/markets/")
    expect_live(page)
    assert opened == [desk_guard.origin.replace("http:", "ws:") + "/ws/v1/"]
    bitcoin = coin_row(page, "Bitcoin").locator("td")
    expect(bitcoin.nth(2)).to_have_text("$86,000.50")
    expect(bitcoin.nth(3)).to_have_class("num down")
    page.evaluate(MARK_PAGE)

    sync_rows(market_row("bitcoin", "87123.455", "2.345", minute=5), market_row("ethereum", "0.000012345", minute=5))

    # the server's own rules: half-even to cents from $1, three significant digits below it, signed percent
    assert price(Decimal("87123.455")) == "$87,123.46"
    expect(bitcoin.nth(2)).to_have_text(price(Decimal("87123.455")), timeout=5000)
    expect(bitcoin.nth(3)).to_have_text(percent(Decimal("2.345")))
    expect(bitcoin.nth(3)).to_have_class("num up")
    ethereum = coin_row(page, "Ethereum").locator("td")
    expect(ethereum.nth(2)).to_have_text("$0.00001234")
    expect(ethereum.nth(3)).to_have_text("—")
    expect(ethereum.nth(3)).to_have_class(re.compile(r"^\s*num\s*$"))
    expect(page.get_by_test_id("live-status")).to_have_text(LIVE)
    assert page.evaluate(NOT_RELOADED)
    assert LIVE_SCRIPT in desk_guard.static_loaded
    desk_guard.assert_clean()


def test_the_coin_page_moves_its_price_and_the_charts_last_point(desk_page: Page, desk_guard: PageGuard, alice, coins):
    page = desk_page
    log_in(page, alice.email, PASSWORD)
    page.goto("/markets/bitcoin/")
    expect_live(page)
    expect(page.get_by_test_id("price")).to_have_text("$86,000.50")
    chart = page.get_by_test_id("price-chart")
    expect(chart).to_have_attribute("data-points", "1")
    expect(chart).to_have_attribute("data-bucket", "3600")
    slots = int(chart.get_attribute("data-slots"))
    first = chart.evaluate(SLOT, slots - 1)
    assert first["value"] == 86000.5
    page.evaluate(MARK_PAGE)

    sync_rows(market_row("bitcoin", "86500.25", "0.5", minute=1))  # the same hourly bucket: its point moves

    expect(page.get_by_test_id("price")).to_have_text("$86,500.25", timeout=5000)
    expect(page.get_by_text("+0.50% (24h)")).to_have_class("up")
    page.wait_for_function(f"(el) => ({SLOT})(el, {slots - 1}).value === 86500.25", arg=chart.element_handle())
    assert chart.evaluate(SLOT, slots - 1) == {"time": first["time"], "value": 86500.25}
    expect(chart).to_have_attribute("data-slots", str(slots))

    later = replace(market_row("bitcoin", "86400", "0.25"), last_updated=datetime(2026, 11, 22, 13, 30, tzinfo=UTC))
    sync_rows(later)  # three buckets later: the point is appended, the two empty slots before it kept as a gap

    expect(chart).to_have_attribute("data-slots", str(slots + 3), timeout=5000)
    expect(chart).to_have_attribute("data-points", "2")
    assert [chart.evaluate(SLOT, index) for index in range(slots - 1, slots + 3)] == [
        {"time": first["time"], "value": 86500.25},
        None,
        None,
        {"time": first["time"] + 3 * 3600, "value": 86400},
    ]
    assert page.evaluate(NOT_RELOADED)
    desk_guard.assert_clean()


def test_the_portfolio_page_follows_its_value_without_a_reload(desk_page: Page, desk_guard: PageGuard, alice, coins):
    page = desk_page
    portfolio = services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal(100000))
    services.place_order(
        user=alice,
        portfolio_id=portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal("0.5"),
        limit_price=Decimal("86000.5"),  # at the market: it fills at once
    )
    portfolio.refresh_from_db()
    assert portfolio.holdings.get(coin_id="bitcoin").quantity == Decimal("0.5")
    log_in(page, alice.email, PASSWORD)
    page.goto(f"/portfolios/{portfolio.pk}/")
    expect_live(page)
    before = money(selectors.portfolio_valuation(portfolio).total_value)
    expect(page.get_by_test_id("total-value")).to_have_text(before)
    page.evaluate(MARK_PAGE)

    sync_rows(market_row("bitcoin", "90000.25", "4.5", minute=10))

    after = money(selectors.portfolio_valuation(Portfolio.objects.get(pk=portfolio.pk)).total_value)
    assert after != before
    expect(page.get_by_test_id("total-value")).to_have_text(after, timeout=5000)
    holdings = page.get_by_test_id("holdings").locator("tr[data-coin=bitcoin] td")
    expect(holdings.nth(2)).to_contain_text("$90,000.25")
    assert page.evaluate(NOT_RELOADED)

    # an order placed elsewhere (the API, a bot) shows in the open orders
    services.place_order(
        user=alice,
        portfolio_id=portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal("0.1"),
        limit_price=Decimal(80000),
    )
    expect(page.get_by_test_id("open-orders").locator("tbody tr")).to_have_count(1, timeout=5000)
    expect(page.get_by_test_id("available-cash")).to_have_text(
        money(Portfolio.objects.get(pk=portfolio.pk).available_cash)
    )
    assert page.evaluate(NOT_RELOADED)
    desk_guard.assert_clean()


def test_the_dashboard_follows_values_and_the_bell_counts_a_new_alert(
    desk_page: Page, desk_guard: PageGuard, alice, coins
):
    page = desk_page
    portfolio = services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal(100000))
    services.place_order(
        user=alice,
        portfolio_id=portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal(1),
        limit_price=Decimal("86000.5"),
    )
    services.save_alert(owner=alice, coin_id="bitcoin", condition=Alert.Condition.PRICE_ABOVE, threshold=Decimal(90000))
    log_in(page, alice.email, PASSWORD)
    expect_live(page)
    bell = page.get_by_test_id("bell")
    expect(bell).to_have_attribute("aria-label", "Notifications")
    expect(bell.get_by_test_id("unread-count")).to_have_count(0)
    page.evaluate(MARK_PAGE)

    sync_rows(market_row("bitcoin", "90001", "4", minute=15))

    expect(bell.get_by_test_id("unread-count")).to_have_text("1", timeout=5000)
    expect(bell).to_have_attribute("aria-label", "Notifications, 1 unread")
    expect(page.get_by_test_id("notifications").locator(".note")).to_have_count(1)
    after = money(selectors.portfolio_valuation(Portfolio.objects.get(pk=portfolio.pk)).total_value)
    expect(page.get_by_test_id("total-value")).to_have_text(after)
    assert page.evaluate(NOT_RELOADED)
    desk_guard.assert_clean()


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
        start=timezone.now() - timedelta(days=120),
        end=timezone.now(),
        initial_capital=Decimal(10000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )


def _step(backtest: Backtest, **fields) -> None:
    """What a worker's run does at each step: write the row, then tell its listeners."""
    Backtest.objects.filter(pk=backtest.pk).update(**fields)
    signals.backtest_changed.send(sender=Backtest, backtest_ids=[backtest.pk])


def test_a_backtest_shows_its_progress_from_the_socket_and_stops_polling(
    desk_page: Page, desk_guard: PageGuard, alice, coins
):
    page = desk_page
    backtest = _backtest(alice)
    url = f"/backtests/{backtest.pk}/"
    log_in(page, alice.email, PASSWORD)
    page.goto(url)
    expect_live(page)
    results = page.get_by_test_id("backtest-results")
    expect(results).to_have_attribute("data-status", "queued")
    page.wait_for_timeout(1500)  # the subscription is confirmed by now: polling has stopped
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if urlsplit(request.url).path == url else None)
    page.evaluate(MARK_PAGE)

    _step(backtest, status=Backtest.Status.RUNNING, progress=40, started_at=timezone.now())

    expect(results.get_by_test_id("progress")).to_have_attribute("value", "40", timeout=5000)
    expect(results.locator(".status")).to_have_text("Running")
    expect(results.locator(".progress-note strong")).to_have_text("40%")
    expect(results.get_by_role("heading", level=2)).to_have_text("Running the backtest…")
    page.wait_for_timeout(1500)
    assert polls == []  # the socket carries it: no request every second

    _step(backtest, status=Backtest.Status.FAILED, error="No stored history.", finished_at=timezone.now())

    expect(page.get_by_test_id("backtest-error")).to_contain_text("No stored history.", timeout=5000)
    expect(results).to_have_attribute("data-status", "failed")
    assert len(polls) == 1  # the finished block, fetched once
    assert page.evaluate(NOT_RELOADED)
    desk_guard.assert_clean()


def test_a_dropped_socket_falls_back_to_polling_and_reconnects_with_its_subscriptions(
    desk_page: Page, desk_guard: PageGuard, alice, coins
):
    page = desk_page
    backtest = _backtest(alice)
    url = f"/backtests/{backtest.pk}/"
    wanted = [
        {"type": "subscribe", "channel": "notifications"},
        {"type": "subscribe", "channel": "backtest", "backtest": str(backtest.pk)},
    ]
    connections: list[tuple[WebSocketRoute, list[dict]]] = []

    def through(socket: WebSocketRoute) -> None:
        """Every connection goes on to the server; what the page sends on it is noted on the way."""
        server = socket.connect_to_server()
        sent: list[dict] = []
        connections.append((socket, sent))

        def note(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        socket.on_message(note)

    log_in(page, alice.email, PASSWORD)
    page.route_web_socket(re.compile(r"/ws/v1/$"), through)
    page.goto(url)
    expect_live(page)
    page.wait_for_timeout(1500)
    assert len(connections) == 1
    assert sorted(connections[0][1], key=json.dumps) == sorted(wanted, key=json.dumps)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if urlsplit(request.url).path == url else None)
    page.evaluate(MARK_PAGE)

    connections[0][0].close(code=1012, reason="restart")  # the server went away: tried again within a second

    page.wait_for_timeout(2500)
    assert len(connections) == 2
    expect(page.get_by_test_id("live-status")).to_have_text(LIVE)
    assert sorted(connections[1][1], key=json.dumps) == sorted(wanted, key=json.dumps)
    polls.clear()
    page.wait_for_timeout(1500)
    assert polls == []  # live again: the polling stopped again

    connections[1][0].close(code=4401)  # signed out: no more tries, the page polls from now on

    expect(page.get_by_test_id("live-status")).to_have_text(POLLING)
    with page.expect_request(lambda request: urlsplit(request.url).path == url, timeout=3000):
        pass
    page.wait_for_timeout(2000)
    assert len(connections) == 2
    assert len(polls) >= 2
    expect(page.get_by_test_id("live-status")).to_have_text(POLLING)
    assert page.evaluate(NOT_RELOADED)
    desk_guard.assert_clean()


def test_signed_out_pages_open_no_socket(desk_page: Page, desk_guard: PageGuard, coins):
    page = desk_page
    opened = sockets_of(page)
    page.goto("/markets/")
    expect(coin_row(page, "Bitcoin")).to_have_count(1)
    page.wait_for_timeout(500)
    assert opened == []
    expect(page.get_by_test_id("live-status")).to_have_count(0)
    assert LIVE_SCRIPT not in desk_guard.static_loaded
    desk_guard.assert_clean()


def test_under_wsgi_pages_poll_and_never_try_a_socket(page: Page, page_guard: PageGuard, alice, coins):
    opened = sockets_of(page)
    log_in(page, alice.email, PASSWORD)
    page.goto("/markets/")
    status = page.get_by_test_id("live-status")
    expect(status).to_have_text(POLLING)
    expect(status).to_have_attribute("role", "status")
    expect(page.locator("[data-refresh][hx-trigger='every 60s']")).to_have_count(1)
    page.wait_for_timeout(1000)
    assert opened == []
    assert LIVE_SCRIPT not in page_guard.static_loaded
    expect(status).to_have_text(POLLING)
    page_guard.assert_clean()
