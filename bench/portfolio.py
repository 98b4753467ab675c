"""Portfolio bench: summary and holdings at 10,000 trades vs 10, concurrent orders under gunicorn, dashboard queries."""

import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/portfolio.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    EMAIL,
    START_TIMEOUT_S,
    THREADS_PER_WORKER,
    WORKERS,
    ensure_database,
    ensure_user,
    install_sigterm_handler,
    migrate,
    obtain_tokens,
    require_loopback,
    server_cpu_seconds,
    server_env,
    serving,
    setup_django,
    with_database,
)

if TYPE_CHECKING:
    from django.test import Client

    from accounts.models import User
    from portfolios.models import Portfolio

# Its own database: the 10,000-trade portfolio is kept between runs, and the other benches and test runs never
# see it. Same server as DATABASE_URL unless BENCH_PORTFOLIO_DATABASE_URL names another one.
DATABASE = "cryptodesk_bench_portfolio"
# Cached user rows are keyed by user id: without their own prefix they would collide with cryptodesk_bench's users.
CACHE_KEY_PREFIX = "cryptodesk-bench-portfolio"

HEAVY_EMAIL = EMAIL  # many portfolios, the 10,000 trades, watchlists, alerts, notifications
LIGHT_EMAIL = "bench-light@cryptodesk.local"  # one small portfolio and a little of everything else
STARTING_CASH = Decimal(1_000_000)

# --- 1. summary and holdings, 10,000 trades vs 10 ---
HOLDING_COINS = 10  # both portfolios hold these ten coins: the 10-trade one is a single buy of each
BIG_NAME = "bench 10k trades"
SMALL_NAME = "bench 10 trades"
BIG_TRADES = 10_000
SMALL_TRADES = HOLDING_COINS
BIG_NOTIONAL = Decimal(100)  # per fill, in USD
SUMMARY_PATH = "/api/v1/portfolios/{id}/summary/"
HOLDINGS_PATH = "/api/v1/portfolios/{id}/holdings/"
TOKEN_PATH = "/api/v1/auth/token/"
LATENCY_SAMPLES = 50  # per portfolio and endpoint
LATENCY_WARMUP = 5
QUERY_SAMPLES = 5
LATENCY_MAX_S = 60.0
TARGET_LATENCY_RATIO = 1.5

# --- 2. concurrent orders under gunicorn ---
ORDERS_PATH = "/api/v1/orders/"
CLIENTS = 10
ORDERS_PER_CLIENT = 60
ORDER_MAX_S = 40.0
ORDER_COINS = 5  # few coins, so concurrent orders in the shared portfolio also meet on the same holding rows
ORDER_NOTIONAL = Decimal(25)
SHARED_EVERY = 4  # every 4th order of each client goes to the shared portfolio
IMPOSSIBLE_EVERY = 25  # every 25th order sells more than its portfolio holds: two per client
CLIENT_PREFIX = "bench client "
SHARED_NAME = "bench shared"
OPEN_ORDERS_NAME = "bench open orders"
CLIENT_CASH = Decimal(100_000)
REFUSED_TYPE = "/problems/order-refused"

# --- 3. dashboard ---
LOGIN_PATH = "/login/"
LOGOUT_PATH = "/logout/"
DASHBOARD_PATH = "/dashboard/"
DASHBOARD_SAMPLES = 3
DASHBOARD_TIMED = 20  # informative only: no target on the dashboard's latency
TARGET_DASHBOARD_QUERIES = 9  # one batched read of every portfolio's transfers since its last close
HEAVY_WATCHLISTS = 5
HEAVY_WATCHLIST_COINS = 20
HEAVY_ALERTS = 40
HEAVY_NOTIFICATIONS = 300
HEAVY_UNREAD = 100
HEAVY_OPEN_ORDERS = 5


def elapsed_since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f}s"


def quantity_for(price: Decimal, notional: Decimal) -> Decimal:
    """About `notional` USD of a coin, 8 places, never zero."""
    from cryptodesk.money import CONTEXT, quantize

    with localcontext(CONTEXT):
        quantity = quantize(notional / price, places=8, rounding=ROUND_DOWN)
    return max(quantity, Decimal("0.00000001"))


def plain(value: Decimal) -> str:
    """A JSON string the API parses exactly: no exponent."""
    return format(value.normalize(), "f")


# --- data -------------------------------------------------------------------------------------------


def seed_market() -> list[tuple[str, Decimal]]:
    """The demo market unless coins are there; the most valuable quoted coins with their prices, by rank."""
    from market.demo.snapshot import load_snapshot
    from market.models import Quote

    loaded = load_snapshot()
    if loaded:
        print(f"loaded the demo market: {loaded['coins']} coins, {loaded['points']} price points")
    needed = max(HOLDING_COINS, HEAVY_WATCHLIST_COINS)
    coins = list(
        Quote.objects.filter(current_price__gt=0)
        .order_by("coin__market_cap_rank", "coin_id")
        .values_list("coin_id", "current_price")[:needed]
    )
    if len(coins) < needed:
        raise RuntimeError(f"only {len(coins)} quoted coins: the bench needs {needed}")
    return coins


def kept_portfolio(owner: "User", name: str, *, trades: int) -> "Portfolio | None":
    """The portfolio an earlier run built, if it is still exactly that; anything else is removed."""
    from portfolios import services
    from portfolios.models import Holding, Portfolio, Trade

    portfolio = Portfolio.objects.filter(owner=owner, name=name).first()
    if portfolio is None:
        return None
    held = Holding.objects.filter(portfolio=portfolio, quantity__gt=0).count()
    if Trade.objects.filter(portfolio=portfolio).count() == trades and held == HOLDING_COINS:
        return portfolio
    services.delete_portfolio(portfolio=portfolio)
    return None


def build_small_portfolio(owner: "User", coins: list[tuple[str, Decimal]]) -> "Portfolio":
    """Ten real market buys through the service, one per coin."""
    from portfolios import services

    portfolio = services.create_portfolio(owner=owner, name=SMALL_NAME, starting_cash=STARTING_CASH)
    for coin_id, price in coins[:HOLDING_COINS]:
        services.place_order(
            user=owner,
            portfolio_id=portfolio.pk,
            coin_id=coin_id,
            side="buy",
            type="market",
            quantity=quantity_for(price, BIG_NOTIONAL),
        )
    return portfolio


def build_big_portfolio(owner: "User", coins: list[tuple[str, Decimal]]) -> "Portfolio":
    """10,000 fills bulk-inserted: placing them one by one takes about two minutes (11-13 ms, 19 statements each).

    Each fill goes through the services' own fill arithmetic on the in-memory portfolio and holding, so orders,
    trades, holdings (average cost, realized P&L) and cash are exactly what placing them would have left.
    """
    from django.db import connection, transaction
    from django.utils import timezone

    from cryptodesk.money import quantize
    from portfolios import services
    from portfolios.models import CashTransfer, Holding, Order, Portfolio, Trade

    portfolio = services.create_portfolio(owner=owner, name=BIG_NAME, starting_cash=STARTING_CASH)
    now = timezone.now()
    start = now - timedelta(minutes=BIG_TRADES + 1)  # a week of trading, one fill a minute, ending now
    held = coins[:HOLDING_COINS]
    holdings = {coin_id: Holding(portfolio=portfolio, coin_id=coin_id) for coin_id, _ in held}
    orders, trades = [], []
    for index in range(BIG_TRADES):
        coin_id, quote = held[index % len(held)]
        # Two buys then a sell of the same size, per coin: every sell is covered and every position ends open.
        side = Order.Side.SELL if (index // len(held)) % 3 == 2 else Order.Side.BUY
        quantity = quantity_for(quote, BIG_NOTIONAL)
        price = quantize(quote * (1000 + (index * 7) % 41 - 20) / 1000)  # within 2 % of the quote
        apply = services._apply_sell if side == Order.Side.SELL else services._apply_buy
        fill = apply(portfolio, holdings[coin_id], quantity, price)
        at = start + timedelta(minutes=index + 1)
        order = Order(
            portfolio=portfolio,
            coin_id=coin_id,
            side=side,
            type=Order.Type.MARKET,
            quantity=quantity,
            status=Order.Status.FILLED,
            filled_price=price,
            fee=fill.fee,
            created_at=at,
            filled_at=at,
        )
        orders.append(order)
        trades.append(
            Trade(
                order=order,
                portfolio=portfolio,
                coin_id=coin_id,
                side=side,
                quantity=quantity,
                price=price,
                notional=fill.notional,
                fee=fill.fee,
                realized_pnl=fill.realized_pnl,
                executed_at=at,
            )
        )
    with transaction.atomic():
        Order.objects.bulk_create(orders, batch_size=2000)
        Trade.objects.bulk_create(trades, batch_size=2000)
        for holding in holdings.values():
            holding.updated_at = now
        Holding.objects.bulk_create(holdings.values())
        Portfolio.objects.filter(pk=portfolio.pk).update(cash=portfolio.cash, created_at=start)
        # Dated before the first fill, as it was: left at today, it would count as today's flow in the day change.
        CashTransfer.objects.filter(portfolio=portfolio).update(created_at=start)
    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would leave them after such a load
        cursor.execute("ANALYZE portfolios_order, portfolios_trade, portfolios_holding")
    services.take_snapshot(portfolio_id=portfolio.pk)
    portfolio.refresh_from_db()
    return portfolio


def ensure_yesterday(portfolio: "Portfolio") -> None:
    """Yesterday's close at today's value: both portfolios then take the summary's day-change branch."""
    from django.utils import timezone

    from portfolios.models import PortfolioSnapshot
    from portfolios.selectors import portfolio_valuation

    valuation = portfolio_valuation(portfolio)
    PortfolioSnapshot.objects.get_or_create(
        portfolio=portfolio,
        date=timezone.now().date() - timedelta(days=1),
        defaults={"cash": valuation.cash, "market_value": valuation.market_value, "total_value": valuation.total_value},
    )


def reset_portfolios(owner: "User", prefixes: tuple[str, ...]) -> None:
    """The order bench's portfolios are new every run: the 201s counted must be all of their fills."""
    from django.db.models import Q

    from portfolios import services
    from portfolios.models import Portfolio

    matching = Q()
    for prefix in prefixes:
        matching |= Q(name__startswith=prefix)
    for portfolio in Portfolio.objects.filter(matching, owner=owner):
        services.delete_portfolio(portfolio=portfolio)


def ensure_open_orders(owner: "User", portfolio: "Portfolio", coins: list[tuple[str, Decimal]], count: int) -> None:
    """Limit buys at half the price, up to `count` open: they stay open (demo prices do not move) for the dashboard."""
    from cryptodesk.money import quantize
    from portfolios import services
    from portfolios.models import Order

    already = Order.objects.filter(portfolio=portfolio, status=Order.Status.OPEN).count()
    for coin_id, price in coins[already:count]:
        services.place_order(
            user=owner,
            portfolio_id=portfolio.pk,
            coin_id=coin_id,
            side="buy",
            type="limit",
            quantity=quantity_for(price, ORDER_NOTIONAL),
            limit_price=quantize(price / 2),
        )


def reset_extras(
    owner: "User",
    coins: list[str],
    *,
    watchlists: int,
    watchlist_coins: int,
    alerts: int,
    notifications: int,
    unread: int,
) -> None:
    """Watchlists, alerts and notifications rebuilt each run, so every run measures the same amounts."""
    from django.utils import timezone

    from portfolios.models import Alert, Notification, Watchlist

    Watchlist.objects.filter(owner=owner).delete()
    Alert.objects.filter(owner=owner).delete()
    Notification.objects.filter(user=owner).delete()
    for index in range(watchlists):
        watchlist = Watchlist.objects.create(owner=owner, name=f"bench watchlist {index}")
        watchlist.coins.set(coins[:watchlist_coins])
    conditions = [Alert.Condition.PRICE_ABOVE, Alert.Condition.PRICE_BELOW, Alert.Condition.CHANGE_24H_ABOVE]
    Alert.objects.bulk_create(
        Alert(
            owner=owner,
            coin_id=coins[index % len(coins)],
            condition=conditions[index % len(conditions)],
            threshold=Decimal(1_000_000 + index),  # never met: evaluating them would notify nobody
        )
        for index in range(alerts)
    )
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(
            user=owner,
            title=f"Bench notification {index}",
            body="A price crossed a threshold.",
            link=f"/markets/{coins[index % len(coins)]}/",
            created_at=now - timedelta(minutes=index),
            read_at=None if index < unread else now,
        )
        for index in range(notifications)
    )


@dataclass(frozen=True)
class Fixture:
    heavy: "User"
    light: "User"
    big: "Portfolio"
    small: "Portfolio"
    clients: list["Portfolio"]
    shared: "Portfolio"
    order_coins: list[tuple[str, Decimal]]


def prepare(heavy: "User", light: "User", coins: list[tuple[str, Decimal]]) -> Fixture:
    from portfolios import services

    coin_ids = [coin_id for coin_id, _ in coins]
    small = kept_portfolio(light, SMALL_NAME, trades=SMALL_TRADES) or build_small_portfolio(light, coins)
    big = kept_portfolio(heavy, BIG_NAME, trades=BIG_TRADES)
    if big is None:
        started = time.perf_counter()
        big = build_big_portfolio(heavy, coins)
        print(f"built {BIG_NAME!r}: {BIG_TRADES:,} orders and trades in {elapsed_since(started)}", flush=True)
    for portfolio in (big, small):
        ensure_yesterday(portfolio)

    reset_portfolios(heavy, (CLIENT_PREFIX, SHARED_NAME, OPEN_ORDERS_NAME))
    clients = [
        services.create_portfolio(owner=heavy, name=f"{CLIENT_PREFIX}{index}", starting_cash=CLIENT_CASH)
        for index in range(CLIENTS)
    ]
    shared = services.create_portfolio(owner=heavy, name=SHARED_NAME, starting_cash=STARTING_CASH)
    open_orders = services.create_portfolio(owner=heavy, name=OPEN_ORDERS_NAME, starting_cash=CLIENT_CASH)
    ensure_open_orders(heavy, open_orders, coins, HEAVY_OPEN_ORDERS)
    ensure_open_orders(light, small, coins, 1)
    reset_extras(
        heavy,
        coin_ids,
        watchlists=HEAVY_WATCHLISTS,
        watchlist_coins=HEAVY_WATCHLIST_COINS,
        alerts=HEAVY_ALERTS,
        notifications=HEAVY_NOTIFICATIONS,
        unread=HEAVY_UNREAD,
    )
    reset_extras(light, coin_ids, watchlists=1, watchlist_coins=3, alerts=1, notifications=2, unread=1)
    return Fixture(
        heavy=heavy,
        light=light,
        big=big,
        small=small,
        clients=clients,
        shared=shared,
        order_coins=coins[:ORDER_COINS],
    )


# --- 1. summary and holdings ----------------------------------------------------------------------


def api_client(email: str, password: str) -> tuple["Client", str]:
    """An in-process client carrying a JWT obtained through the token endpoint; and the refresh token to end it."""
    from django.test import Client

    response = Client().post(TOKEN_PATH, {"email": email, "password": password}, content_type="application/json")
    if response.status_code != 200:
        raise RuntimeError(f"in-process token request failed: HTTP {response.status_code} {response.content[:200]!r}")
    tokens = response.json()
    return Client(headers={"Authorization": f"Bearer {tokens['access']}"}), tokens["refresh"]


@dataclass(frozen=True)
class EndpointResult:
    endpoint: str
    big_queries: list[int]
    small_queries: list[int]
    big_p50_ms: float
    small_p50_ms: float
    big_bytes: int
    small_bytes: int
    samples: int

    @property
    def ratio(self) -> float:
        return self.big_p50_ms / self.small_p50_ms if self.small_p50_ms else float("inf")

    @property
    def queries_equal(self) -> bool:
        return len(set(self.big_queries) | set(self.small_queries)) == 1


def get_ok(client: "Client", path: str) -> bytes:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"in-process GET {path} failed: HTTP {response.status_code} {response.content[:200]!r}")
    return response.content


def query_counts(client: "Client", path: str) -> list[int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for _ in range(QUERY_SAMPLES):
        connection.queries_log.clear()  # a full log (9000 entries) would make the captured slice wrong
        with CaptureQueriesContext(connection) as captured:
            get_ok(client, path)
        counts.append(len(captured.captured_queries))
    return counts


def measure_endpoint(endpoint: str, template: str, clients: dict[str, tuple["Client", "Portfolio"]]) -> EndpointResult:
    """Queries of warm requests, then p50 latency with big and small alternating (A B B A) so drift hits both."""
    paths = {name: template.format(id=portfolio.pk) for name, (_, portfolio) in clients.items()}
    sizes = {}
    for name, (client, _) in clients.items():
        for _ in range(LATENCY_WARMUP):
            sizes[name] = len(get_ok(client, paths[name]))
    queries = {name: query_counts(client, paths[name]) for name, (client, _) in clients.items()}
    timings: dict[str, list[float]] = {name: [] for name in clients}
    deadline = time.perf_counter() + LATENCY_MAX_S
    for sample in range(LATENCY_SAMPLES):
        if time.perf_counter() > deadline:
            break
        for name in ["big", "small"] if sample % 2 == 0 else ["small", "big"]:
            client = clients[name][0]
            started = time.perf_counter()
            get_ok(client, paths[name])
            timings[name].append(time.perf_counter() - started)
    return EndpointResult(
        endpoint=endpoint,
        big_queries=queries["big"],
        small_queries=queries["small"],
        big_p50_ms=1000 * statistics.median(timings["big"]),
        small_p50_ms=1000 * statistics.median(timings["small"]),
        big_bytes=sizes["big"],
        small_bytes=sizes["small"],
        samples=min(len(timings["big"]), len(timings["small"])),
    )


def check_holdings_listed(client: "Client", portfolio: "Portfolio") -> None:
    """The comparison only holds if both list the same number of positions."""
    rows = json.loads(get_ok(client, HOLDINGS_PATH.format(id=portfolio.pk)))
    if len(rows) != HOLDING_COINS:
        raise RuntimeError(f"{portfolio.name!r} lists {len(rows)} holdings, expected {HOLDING_COINS}")


def measure_reads(fixture: Fixture, passwords: dict[str, str], refresh_tokens: list[str]) -> list[EndpointResult]:
    """Both clients' refresh tokens go to `refresh_tokens` at once, so their sessions end even if this fails."""
    from portfolios.models import Trade

    heavy_client, refresh = api_client(HEAVY_EMAIL, passwords[HEAVY_EMAIL])
    refresh_tokens.append(refresh)
    light_client, refresh = api_client(LIGHT_EMAIL, passwords[LIGHT_EMAIL])
    refresh_tokens.append(refresh)
    clients = {"big": (heavy_client, fixture.big), "small": (light_client, fixture.small)}
    for client, portfolio in clients.values():
        check_holdings_listed(client, portfolio)
    big_trades = Trade.objects.filter(portfolio=fixture.big).count()
    small_trades = Trade.objects.filter(portfolio=fixture.small).count()
    print(
        f"{fixture.big.name!r}: {big_trades:,} trades; {fixture.small.name!r}: {small_trades} trades; "
        f"{HOLDING_COINS} holdings each; in-process test client with a JWT, {LATENCY_SAMPLES} requests each",
        flush=True,
    )
    return [
        measure_endpoint("summary", SUMMARY_PATH, clients),
        measure_endpoint("holdings", HOLDINGS_PATH, clients),
    ]


def report_reads(results: list[EndpointResult]) -> None:
    for result in results:
        print(
            f"{result.endpoint:8}: queries big {'/'.join(map(str, sorted(set(result.big_queries))))}, "
            f"small {'/'.join(map(str, sorted(set(result.small_queries))))}; p50 big {result.big_p50_ms:.2f} ms, "
            f"small {result.small_p50_ms:.2f} ms over {result.samples} requests -> big/small {result.ratio:.2f}; "
            f"body {result.big_bytes} / {result.small_bytes} bytes"
        )


# --- 2. concurrent orders -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: no HTTP answer at all
    expected: int
    problem: str
    seconds: float
    body: str

    @property
    def unexpected(self) -> bool:
        if self.status != self.expected:
            return True
        return self.status == 400 and self.problem != REFUSED_TYPE


@dataclass
class OrderRun:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def statuses(self) -> Counter:
        return Counter("error" if outcome.status is None else outcome.status for outcome in self.outcomes)

    @property
    def unexpected(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.unexpected]

    @property
    def rate(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds else 0.0

    @property
    def fill_rate(self) -> float:
        return self.statuses[201] / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms_per_order(self) -> float:
        return 1000 * self.server_cpu_s / len(self.outcomes) if self.outcomes else 0.0


def run_client(
    index: int,
    base_url: str,
    headers: dict[str, str],
    own_id: int,
    shared_id: int,
    coins: list[tuple[str, Decimal]],
    ready: threading.Barrier,
    outcomes: list[Outcome],
    finished: list[float],
) -> None:
    """Market buys and sells in its own portfolio and the shared one; sells only what its own 201s bought there."""
    held: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    with httpx.Client(base_url=base_url, headers=headers, timeout=30.0, trust_env=False) as client:
        client.get(SUMMARY_PATH.format(id=own_id))  # opens the connection before the clock starts
        ready.wait(timeout=START_TIMEOUT_S)
        deadline = time.perf_counter() + ORDER_MAX_S
        try:
            for step in range(ORDERS_PER_CLIENT):
                if time.perf_counter() > deadline:
                    break
                coin_id, price = coins[(index + step) % len(coins)]
                quantity = quantity_for(price, ORDER_NOTIONAL)
                portfolio_id = shared_id if step % SHARED_EVERY == SHARED_EVERY - 1 else own_id
                key = (portfolio_id, coin_id)
                if step % IMPOSSIBLE_EVERY == IMPOSSIBLE_EVERY - 1:
                    # Only this client trades its own portfolio: what it holds there is known exactly.
                    portfolio_id, key = own_id, (own_id, coin_id)
                    side, amount, expected = "sell", held[key] + 1000 * quantity, 400
                elif held[key] >= 2 * quantity:
                    side, amount, expected = "sell", quantity, 201
                else:
                    side, amount, expected = "buy", quantity, 201
                body = {
                    "portfolio": portfolio_id,
                    "coin": coin_id,
                    "side": side,
                    "type": "market",
                    "quantity": plain(amount),
                }
                started = time.perf_counter()
                try:
                    response = client.post(ORDERS_PATH, json=body)
                except httpx.HTTPError as exc:
                    outcomes.append(Outcome(None, expected, "", time.perf_counter() - started, repr(exc)))
                    continue
                seconds = time.perf_counter() - started
                problem = ""
                if response.headers.get("content-type", "").startswith("application/problem+json"):
                    try:
                        problem = response.json().get("type", "")
                    except ValueError:  # a garbled error body stays unexpected: its type is then empty
                        pass
                outcomes.append(Outcome(response.status_code, expected, problem, seconds, response.text[:300]))
                if response.status_code == 201:
                    held[key] += amount if side == "buy" else -amount
        finally:
            finished[index] = time.perf_counter()


def place_orders_concurrently(base_url: str, access: str, fixture: Fixture, server_pid: int) -> OrderRun:
    headers = {"Authorization": f"Bearer {access}"}
    outcomes: list[list[Outcome]] = [[] for _ in range(CLIENTS)]
    finished = [0.0] * CLIENTS
    ready = threading.Barrier(CLIENTS + 1)
    threads = [
        threading.Thread(
            target=run_client,
            args=(
                index,
                base_url,
                headers,
                fixture.clients[index].pk,
                fixture.shared.pk,
                fixture.order_coins,
                ready,
                outcomes[index],
                finished,
            ),
            daemon=True,
        )
        for index in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    server_before = server_cpu_seconds(server_pid)
    ready.wait(timeout=START_TIMEOUT_S)
    started = time.perf_counter()  # the barrier releases everyone at once: the window starts now
    for thread in threads:
        thread.join(timeout=ORDER_MAX_S + 60)
    if any(thread.is_alive() for thread in threads):
        raise RuntimeError("an order client did not finish in time")
    return OrderRun(
        outcomes=[outcome for run in outcomes for outcome in run],
        seconds=max(finished) - started,
        server_cpu_s=server_cpu_seconds(server_pid) - server_before,
    )


def check_books() -> tuple[int, int, list[str]]:
    """Every portfolio's cash and holdings against its transfers, trades and open orders; (portfolios, trades, errors).

    cash = deposits - withdrawals - sum(buy notional + fee) + sum(sell notional - fee); quantity = buys - sells per
    coin; reserved cash and quantities = what the open orders hold; every filled order has its trade.
    """
    from django.db.models import Count, F, Q, Sum

    from portfolios.models import CashTransfer, Holding, Order, Portfolio, Trade

    zero = Decimal(0)
    flows = {
        row["portfolio_id"]: (row["deposits"] or zero) - (row["withdrawals"] or zero)
        for row in CashTransfer.objects.values("portfolio_id").annotate(
            deposits=Sum("amount", filter=Q(kind=CashTransfer.Kind.DEPOSIT)),
            withdrawals=Sum("amount", filter=Q(kind=CashTransfer.Kind.WITHDRAWAL)),
        )
    }
    fills = {
        row["portfolio_id"]: row
        for row in Trade.objects.values("portfolio_id").annotate(
            trades=Count("id"),
            bought=Sum(F("notional") + F("fee"), filter=Q(side=Order.Side.BUY)),
            sold=Sum(F("notional") - F("fee"), filter=Q(side=Order.Side.SELL)),
        )
    }
    positions = {
        (row["portfolio_id"], row["coin_id"]): (row["bought"] or zero) - (row["sold"] or zero)
        for row in Trade.objects.values("portfolio_id", "coin_id").annotate(
            bought=Sum("quantity", filter=Q(side=Order.Side.BUY)),
            sold=Sum("quantity", filter=Q(side=Order.Side.SELL)),
        )
    }
    open_orders = Order.objects.filter(status=Order.Status.OPEN)
    reserved_cash = {
        row["portfolio_id"]: row["total"]
        for row in open_orders.filter(side=Order.Side.BUY).values("portfolio_id").annotate(total=Sum("reserved"))
    }
    reserved_coins: dict[tuple[int, str], Decimal] = {
        (row["portfolio_id"], row["coin_id"]): row["total"]
        for row in open_orders.filter(side=Order.Side.SELL)
        .values("portfolio_id", "coin_id")
        .annotate(total=Sum("reserved"))
    }
    filled = dict(
        Order.objects.filter(status=Order.Status.FILLED)
        .values("portfolio_id")
        .annotate(count=Count("id"))
        .values_list("portfolio_id", "count")
    )

    errors = []
    portfolios = list(Portfolio.objects.values_list("pk", "name", "cash", "reserved_cash"))
    for pk, name, cash, reserved in portfolios:
        row = fills.get(pk, {})
        expected = flows.get(pk, zero) - (row.get("bought") or zero) + (row.get("sold") or zero)
        if cash != expected:
            errors.append(f"{name!r}: cash {cash} but transfers and trades imply {expected}")
        if reserved != reserved_cash.get(pk, zero):
            errors.append(f"{name!r}: reserved cash {reserved}, open buys hold {reserved_cash.get(pk, zero)}")
        if filled.get(pk, 0) != row.get("trades", 0):
            errors.append(f"{name!r}: {filled.get(pk, 0)} filled orders but {row.get('trades', 0)} trades")
    holdings = Holding.objects.all().values_list(
        "portfolio_id", "portfolio__name", "coin_id", "quantity", "reserved_quantity"
    )
    seen = set()
    for portfolio_id, name, coin_id, quantity, reserved in holdings:
        seen.add((portfolio_id, coin_id))
        expected = positions.get((portfolio_id, coin_id), zero)
        if quantity != expected:
            errors.append(f"{name!r} {coin_id}: holds {quantity} but its trades imply {expected}")
        if reserved != reserved_coins.get((portfolio_id, coin_id), zero):
            held = reserved_coins.get((portfolio_id, coin_id), zero)
            errors.append(f"{name!r} {coin_id}: reserved {reserved}, open sells hold {held}")
    for (portfolio_id, coin_id), quantity in positions.items():
        if (portfolio_id, coin_id) not in seen and quantity != 0:
            errors.append(f"portfolio {portfolio_id} {coin_id}: no holding row but its trades imply {quantity}")
    trades = sum(row["trades"] for row in fills.values())
    return len(portfolios), trades, errors


@dataclass(frozen=True)
class OrderResult:
    run: OrderRun
    fills_stored: int
    books_portfolios: int
    books_trades: int
    books_errors: list[str]

    @property
    def passed(self) -> bool:
        return not self.run.unexpected and not self.books_errors and self.fills_stored == self.run.statuses[201]


def measure_orders(env: dict[str, str], fixture: Fixture, password: str, refresh_tokens: list[str]) -> OrderResult:
    from django.db import connections

    from portfolios.models import Trade

    connections.close_all()  # no idle connection held through the load run
    with serving(env) as (server, base_url):
        tokens = obtain_tokens(base_url, password)
        refresh_tokens.append(tokens["refresh"])
        print(
            f"gunicorn {WORKERS} workers x {THREADS_PER_WORKER} threads; {CLIENTS} clients x up to "
            f"{ORDERS_PER_CLIENT} market orders ({ORDER_COINS} coins, every {SHARED_EVERY}th into one shared "
            f"portfolio, every {IMPOSSIBLE_EVERY}th an oversell expected to be refused)",
            flush=True,
        )
        run = place_orders_concurrently(base_url, tokens["access"], fixture, server.pid)
    section_ids = [portfolio.pk for portfolio in [*fixture.clients, fixture.shared]]
    fills_stored = Trade.objects.filter(portfolio_id__in=section_ids).count()
    portfolios, trades, errors = check_books()  # every portfolio in the database, not only this section's
    return OrderResult(
        run=run, fills_stored=fills_stored, books_portfolios=portfolios, books_trades=trades, books_errors=errors
    )


def report_orders(result: OrderResult) -> None:
    run = result.run
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses.items(), key=str))
    latencies = sorted(outcome.seconds for outcome in run.outcomes)
    p50 = 1000 * statistics.median(latencies) if latencies else 0.0
    p95 = 1000 * latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    print(
        f"{len(run.outcomes)} of {CLIENTS * ORDERS_PER_CLIENT} planned orders in {run.seconds:.1f}s: {run.rate:.0f} orders/s ({run.fill_rate:.0f} fills/s); "
        f"latency p50 {p50:.0f} ms, p95 {p95:.0f} ms; gunicorn {run.server_cpu_ms_per_order:.1f} ms cpu/order"
    )
    print(f"status codes: {statuses}; unexpected: {len(run.unexpected)}")
    for outcome in run.unexpected[:5]:
        print(f"  expected {outcome.expected}, got {outcome.status}: {outcome.body[:200]}")
    print(f"fills stored in this section's portfolios: {result.fills_stored} (201 responses: {run.statuses[201]})")
    if result.books_errors:
        print(f"books: {len(result.books_errors)} mismatches over {result.books_portfolios} portfolios:")
        for error in result.books_errors[:10]:
            print(f"  {error}")
    else:
        print(
            f"books: cash, holdings and reservations of all {result.books_portfolios} portfolios match their "
            f"{result.books_trades:,} trades, transfers and open orders"
        )


# --- 3. dashboard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardResult:
    label: str
    queries: list[int]
    error: str = ""
    statements: list[str] = field(default_factory=list)
    p50_ms: float | None = None

    @property
    def worst(self) -> int | None:
        return max(self.queries) if self.queries else None


def dashboard_queries(label: str, email: str, password: str) -> DashboardResult:
    """Logged in through the browser form, the queries of warm GET /dashboard/ requests, then logged out."""
    import logging

    from django.conf import settings
    from django.test.utils import override_settings

    # A failing page is reported in one line; django.request would also log its whole traceback on every request.
    request_log = logging.getLogger("django.request")
    level = request_log.level
    request_log.setLevel(logging.CRITICAL)
    # With DEBUG=0 pages name static files through collectstatic's manifest, which this checkout does not have
    # (running collectstatic would write into the working tree). Plain static URLs cost no query either way.
    plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    try:
        with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain_static}):
            return browse_dashboard(label, email, password)
    finally:
        request_log.setLevel(level)


def browse_dashboard(label: str, email: str, password: str) -> DashboardResult:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    login = client.post(LOGIN_PATH, {"email": email, "password": password})
    if login.status_code != 302:
        return DashboardResult(label, [], f"POST {LOGIN_PATH} answered {login.status_code}, not a redirect")
    counts: list[int] = []
    statements: list[str] = []
    try:
        warm = client.get(DASHBOARD_PATH)  # the session and user reach the cache on the first request
        if warm.status_code != 200:
            return DashboardResult(label, [], f"GET {DASHBOARD_PATH} answered {warm.status_code}")
        for _ in range(DASHBOARD_SAMPLES):
            connection.queries_log.clear()  # a full log (9000 entries) would make the captured slice wrong
            with CaptureQueriesContext(connection) as captured:
                response = client.get(DASHBOARD_PATH)
            if response.status_code != 200:
                return DashboardResult(label, counts, f"GET {DASHBOARD_PATH} answered {response.status_code}")
            counts.append(len(captured.captured_queries))
            statements = [query["sql"] for query in captured.captured_queries]
        timings = []
        for _ in range(DASHBOARD_TIMED):
            started = time.perf_counter()
            response = client.get(DASHBOARD_PATH)
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                return DashboardResult(label, counts, f"GET {DASHBOARD_PATH} answered {response.status_code}")
    except Exception as exc:  # the view is being rewritten: a broken page is a finding, not the bench's crash
        return DashboardResult(label, counts, f"GET {DASHBOARD_PATH} raised {type(exc).__name__}: {exc}")
    finally:
        try:
            client.post(LOGOUT_PATH)  # revokes the device session the login opened
        except Exception as exc:  # a failing logout must not hide the measurement
            print(f"logout failed: {type(exc).__name__}: {exc}")
    return DashboardResult(label, counts, statements=statements, p50_ms=1000 * statistics.median(timings))


def report_dashboard(results: list[DashboardResult]) -> None:
    for result in results:
        if result.error:
            print(f"{result.label}: FAILED: {result.error}")
            continue
        counts = "/".join(str(count) for count in sorted(set(result.queries)))
        print(
            f"{result.label}: {counts} queries per warm GET {DASHBOARD_PATH} ({len(result.queries)} requests); "
            f"p50 {result.p50_ms:.1f} ms over {DASHBOARD_TIMED} requests (no target)"
        )
    worst = [result.worst for result in results]
    if any(count is not None and count > TARGET_DASHBOARD_QUERIES for count in worst) or len(set(worst)) > 1:
        for result in results:
            if result.error:
                continue
            print(f"{result.label} statements:")
            for statement in result.statements:
                print(f"  {statement[:160]}")


def measure_dashboard(fixture: Fixture, passwords: dict[str, str]) -> list[DashboardResult]:
    from portfolios.models import Portfolio, Trade

    for label, user in [("light", fixture.light), ("heavy", fixture.heavy)]:
        portfolios = Portfolio.objects.filter(owner=user).count()
        trades = Trade.objects.filter(portfolio__owner=user).count()
        print(
            f"{label} user: {portfolios} portfolios, {trades:,} trades, {user.watchlists.count()} watchlists, "
            f"{user.alerts.count()} alerts, {user.notifications.count()} notifications"
        )
    return [
        dashboard_queries("light", LIGHT_EMAIL, passwords[LIGHT_EMAIL]),
        dashboard_queries("heavy", HEAVY_EMAIL, passwords[HEAVY_EMAIL]),
    ]


# --- main -------------------------------------------------------------------------------------------


def end_api_sessions(refresh_tokens: list[str]) -> None:
    """One device session per token request, not one left open per run."""
    from accounts import services

    for refresh in refresh_tokens:
        services.end_api_session(raw_refresh=refresh)


def main() -> int:
    started = time.perf_counter()
    install_sigterm_handler()
    own_url = os.environ.get("BENCH_PORTFOLIO_DATABASE_URL")
    database_url = own_url or with_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), DATABASE)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("BENCH_PORTFOLIO_DATABASE_URL" if own_url else "DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    env = {
        **server_env(database_url, redis_url, secrets.token_urlsafe(50)),
        "CACHE_KEY_PREFIX": CACHE_KEY_PREFIX,
        "PAPER_ALLOW_STALE_PRICES": "1",  # the demo quotes are as old as the database: market orders still fill
    }

    ensure_database(database_url)
    migrate(env)
    setup_django(env)

    section = time.perf_counter()
    coins = seed_market()
    passwords = {HEAVY_EMAIL: secrets.token_urlsafe(24), LIGHT_EMAIL: secrets.token_urlsafe(24)}
    heavy = ensure_user(HEAVY_EMAIL, passwords[HEAVY_EMAIL], display_name="Bench")
    light = ensure_user(LIGHT_EMAIL, passwords[LIGHT_EMAIL], display_name="Bench light")
    fixture = prepare(heavy, light, coins)
    print(f"(data ready in {elapsed_since(section)})", flush=True)

    refresh_tokens: list[str] = []
    try:
        print(f"== 1. summary and holdings, {BIG_TRADES:,} trades vs {SMALL_TRADES} ==", flush=True)
        section = time.perf_counter()
        reads = measure_reads(fixture, passwords, refresh_tokens)
        report_reads(reads)
        print(f"(section took {elapsed_since(section)})")

        print(f"== 2. {CLIENTS} concurrent clients placing orders under gunicorn ==", flush=True)
        section = time.perf_counter()
        orders = measure_orders(env, fixture, passwords[HEAVY_EMAIL], refresh_tokens)
        report_orders(orders)
        print(f"(section took {elapsed_since(section)})")

        print(f"== 3. GET {DASHBOARD_PATH} queries, light vs heavy user ==", flush=True)
        section = time.perf_counter()
        dashboard = measure_dashboard(fixture, passwords)
        report_dashboard(dashboard)
        print(f"(section took {elapsed_since(section)})")
    finally:
        end_api_sessions(refresh_tokens)

    reads_ok = all(result.queries_equal and result.ratio <= TARGET_LATENCY_RATIO for result in reads)
    worst = [result.worst for result in dashboard]
    dashboard_ok = (
        not any(result.error for result in dashboard)
        and all(count is not None and count <= TARGET_DASHBOARD_QUERIES for count in worst)
        and len(set(worst)) == 1
    )
    passed = reads_ok and orders.passed and dashboard_ok
    read_figures = "; ".join(
        f"{result.endpoint} queries {'=' if result.queries_equal else '!='}, p50 big/small {result.ratio:.2f}"
        for result in reads
    )
    dashboard_figures = (
        "failed"
        if any(result.error for result in dashboard)
        else " / ".join(f"{result.label} {result.worst}" for result in dashboard)
    )
    print(f"total {elapsed_since(started)}")
    print(
        f"portfolio bench: {read_figures} (target equal, <= {TARGET_LATENCY_RATIO}); orders {orders.run.rate:.0f}/s, "
        f"{len(orders.run.unexpected)} unexpected responses, books {'match' if not orders.books_errors else 'differ'} "
        f"(target 0, match); dashboard queries {dashboard_figures} (target <= {TARGET_DASHBOARD_QUERIES}, equal) -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
