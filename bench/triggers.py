"""Trigger bench: one price write of 250 coins over 10,000 open protective orders vs 100, statements and time.

The pass the prices-updated hook runs (`services.trigger_orders`): one read of the waiting orders with their
prices, one update of the trailing stops that moved, then each triggered order's own fill. Both books trigger the
same ten orders, so the statements a fill costs are the same on both sides; the target is that the rest does not
grow with the book (statements equal) and the time at most 3× for 100× the orders.
"""

import os
import secrets
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/triggers.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    ensure_database,
    install_sigterm_handler,
    migrate,
    require_loopback,
    server_env,
    setup_django,
    with_database,
)

DATABASE = "cryptodesk_bench_triggers"
CACHE_KEY_PREFIX = "cryptodesk-bench-triggers"
COINS = 250
PORTFOLIOS = 1_000
BIG, SMALL = 10_000, 100
TRIGGERED = 10  # in both books: the sell stops of the first ten portfolios on coin 0
ROUNDS = 5
START_PRICE = Decimal(100)


def build_book(orders: int) -> None:
    """`orders` open protective orders over PORTFOLIOS portfolios and COINS coins, held as placement would hold
    them: a quarter each of sell stops, take profits, trailing sells by percent and by amount."""
    from django.db import transaction

    from market.models import Coin, Quote
    from portfolios.models import Holding, Order, Portfolio, Trade
    from portfolios.pricing import trail_stop

    with transaction.atomic():
        Trade.objects.all().delete()
        Order.objects.all().delete()
        Holding.objects.all().delete()
        portfolios = list(Portfolio.objects.order_by("pk").values_list("pk", flat=True))
        coins = list(Coin.objects.order_by("pk").values_list("pk", flat=True))
        Quote.objects.update(current_price=START_PRICE)
        per_portfolio = max(1, orders // len(portfolios))
        owners = portfolios[: orders // per_portfolio]
        rows, held = [], {}
        for index in range(orders):
            portfolio = owners[index % len(owners)]
            # coin 0 carries only the ten that trigger; every other order rests on coins 1..249, which rise
            coin = coins[1 + (index // len(owners)) % (len(coins) - 1)] if index >= TRIGGERED else coins[0]
            kind = (
                ("stop", "take_profit", "trailing_pct", "trailing_amount")[index % 4] if index >= TRIGGERED else "stop"
            )
            terms = {"stop_price": Decimal(90)} if index >= TRIGGERED else {"stop_price": Decimal(99)}
            if kind == "take_profit":
                terms = {"stop_price": Decimal(150)}
            elif kind.startswith("trailing"):
                percent, amount = (Decimal(10), None) if kind == "trailing_pct" else (None, Decimal(8))
                terms = {
                    "trail_percent": percent,
                    "trail_amount": amount,
                    "trail_peak": START_PRICE,
                    "stop_price": trail_stop(side="sell", peak=START_PRICE, trail_percent=percent, trail_amount=amount),
                }
            order_type = "trailing_stop" if kind.startswith("trailing") else kind
            rows.append(
                Order(
                    portfolio_id=portfolio,
                    coin_id=coin,
                    side="sell",
                    type=order_type,
                    quantity=Decimal(1),
                    reserved=Decimal(1),
                    **terms,
                )
            )
            held[(portfolio, coin)] = held.get((portfolio, coin), 0) + 1
        Holding.objects.bulk_create(
            Holding(
                portfolio_id=portfolio,
                coin_id=coin,
                quantity=Decimal(count),
                reserved_quantity=Decimal(count),
                average_cost=START_PRICE,
            )
            for (portfolio, coin), count in held.items()
        )
        Order.objects.bulk_create(rows, batch_size=2_000)


def prepare() -> None:
    from django.utils import timezone

    from accounts.models import User
    from market.models import Coin, Quote
    from portfolios.models import Portfolio

    if Portfolio.objects.count() >= PORTFOLIOS and Coin.objects.count() >= COINS:
        return
    now = timezone.now()
    Coin.objects.bulk_create(
        [Coin(id=f"coin-{n:03}", symbol=f"c{n}", name=f"Coin {n}", market_cap_rank=n + 1) for n in range(COINS)],
        ignore_conflicts=True,
    )
    Quote.objects.bulk_create(
        [Quote(coin_id=f"coin-{n:03}", current_price=START_PRICE, last_updated=now) for n in range(COINS)],
        ignore_conflicts=True,
    )
    users = User.objects.bulk_create(
        [User(email=f"trigger-{n}@bench.local", display_name=f"T{n}") for n in range(PORTFOLIOS)],
        ignore_conflicts=True,
    )
    users = list(User.objects.filter(email__endswith="@bench.local").order_by("pk")[:PORTFOLIOS])
    Portfolio.objects.bulk_create(
        [Portfolio(owner=user, name="Book", starting_cash=Decimal(10**6), cash=Decimal(10**6)) for user in users],
        ignore_conflicts=True,
    )


def one_sync() -> tuple[float, int, int]:
    """A price write of every coin (each a little higher: every trailing stop moves), coin 0 falling through the
    ten stops at 99; then the trigger pass, timed, its statements counted. Returns (seconds, statements, triggered)."""
    from django.db import connection
    from django.db.models import Case, DecimalField, F, Value, When
    from django.test.utils import CaptureQueriesContext

    from market.models import Quote
    from portfolios import services

    Quote.objects.update(
        current_price=Case(
            When(coin_id="coin-000", then=Value(Decimal(98))),
            default=F("current_price") + Value(Decimal(1)),
            output_field=DecimalField(max_digits=38, decimal_places=18),
        )
    )
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        triggered = services.trigger_orders(coin_ids=[f"coin-{n:03}" for n in range(COINS)])
    return time.perf_counter() - started, len(queries), triggered


def measure(orders: int) -> dict:
    times, statements = [], []
    for _ in range(ROUNDS):
        build_book(orders)
        seconds, count, triggered = one_sync()
        assert triggered == TRIGGERED, (orders, triggered)
        times.append(seconds)
        statements.append(count)
    return {"orders": orders, "median_s": statistics.median(times), "statements": statements}


def main() -> int:
    install_sigterm_handler()
    own_url = os.environ.get("BENCH_TRIGGERS_DATABASE_URL")
    database_url = own_url or with_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), DATABASE)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("BENCH_TRIGGERS_DATABASE_URL" if own_url else "DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    env = {**server_env(database_url, redis_url, secrets.token_urlsafe(50)), "CACHE_KEY_PREFIX": CACHE_KEY_PREFIX}
    env["CELERY_TASK_ALWAYS_EAGER"] = "1"
    ensure_database(database_url)
    migrate(env)
    setup_django(env)
    from django.conf import settings

    settings.DEBUG = False
    prepare()
    print(
        f"== one price write of {COINS} coins; {TRIGGERED} orders triggered in each book; median of {ROUNDS} ==",
        flush=True,
    )
    small, big = measure(SMALL), measure(BIG)
    for result in (small, big):
        print(
            f"{result['orders']:>6,} open orders: {result['median_s'] * 1000:8.1f} ms per pass, "
            f"statements per pass {result['statements']}"
        )
    ratio = big["median_s"] / small["median_s"]
    same = set(big["statements"]) == set(small["statements"])
    print(
        f"time ratio {BIG:,} / {SMALL:,} orders: {ratio:.2f}x (target <= 3x)  · statements equal: {same} "
        f"({big['statements'][0]} vs {small['statements'][0]}; {TRIGGERED} fills in each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
