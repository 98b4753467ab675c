"""Market bench: the bulk sync write, the cached coin list under gunicorn, and a coin's history at 10M stored points."""

import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/market.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from bench.common import (  # noqa: E402
    CLIENT_THREADS,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    ROUND_S,
    ROUNDS,
    THREADS_PER_WORKER,
    WORKERS,
    compare_throughput,
    database_name,
    ensure_bench_user,
    ensure_database,
    install_sigterm_handler,
    migrate,
    obtain_tokens,
    require_loopback,
    server_env,
    serving,
    setup_django,
    with_database,
)

if TYPE_CHECKING:
    from market.coingecko import MarketRow

# --- 1. sync write path ---
WRITE_COINS = 250  # one CoinGecko markets page, what sync_markets writes per run
WRITE_PREFIX = "bench-write-"  # every coin this section writes, removed before and after
WRITE_UPDATE_ROUNDS = 3  # later syncs: same coins, new prices and timestamps
SPARKLINE_POINTS = 168  # CoinGecko's 7-day sparkline is hourly
TARGET_STATEMENTS = 3
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}
SAVEPOINT_PREFIXES = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")

# --- 2. cached coin list ---
COINS_PATH = "/api/v1/coins/"
CACHED_BYTES_PATH = "/bench/cached-bytes/"
QUERY_SAMPLES = 20
TARGET_RATIO = 0.5
TARGET_QUERIES = 1.0

# --- 3. history at 10M points ---
HISTORY_DATABASE = "cryptodesk_bench_history"  # 10M points: the target coin interleaved with 99 others
BASELINE_DATABASE = "cryptodesk_bench_history_100k"  # the target coin alone: 100k points in the table
HISTORY_TARGET = "hist-000"
HISTORY_COINS = 100
HISTORY_POINTS_PER_COIN = 100_000  # every 5 minutes: about 347 days
HISTORY_STEP = timedelta(minutes=5)
# Fixed, so the 30-day window holds the same points on every run however old the loaded data is.
HISTORY_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
HISTORY_DAYS = 30
HISTORY_RUNS = 50  # per table
HISTORY_BLOCK_RUNS = 5  # timed runs between switches of table
HISTORY_WARMUP_RUNS = 2  # per block: a fresh connection's catalog lookups are not the query's cost
HISTORY_MAX_S = 120.0
QUERY_RUNS = 20  # server-side executions of the bare query, per table
HISTORY_MIGRATE_TIMEOUT_S = 600.0  # a new migration on price points has 10M rows to index or rewrite
LOAD_STATEMENT_TIMEOUT = "20min"
TARGET_HISTORY_RATIO = 1.5


def elapsed_since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f}s"


# --- 1. sync write path ---------------------------------------------------------------------------


def market_rows(prefix: str, *, round_no: int, at: datetime) -> list["MarketRow"]:
    """WRITE_COINS rows with exact 18-place prices; each round moves every price and the timestamp."""
    from cryptodesk.money import quantize
    from market.coingecko import MarketRow

    rows = []
    for index in range(WRITE_COINS):
        price = Decimal(f"{1000 + index}.{round_no:02d}{index:016d}")
        market_cap = quantize(price * 19_000_000, places=2)
        rows.append(
            MarketRow(
                id=f"{prefix}{index:03d}",
                symbol=f"bw{index}",
                name=f"Bench write {index}",
                image=f"https://assets.example.invalid/coins/{index}.png",
                current_price=price,
                market_cap=market_cap,
                total_volume=quantize(market_cap / 20, places=2),
                price_change_percentage_24h=Decimal(f"{index % 40 - 20}.12345678"),
                market_cap_rank=10_000 + index,  # far below the demo coins
                high_24h=price + Decimal("1.5"),
                low_24h=price - Decimal("1.5"),
                last_updated=at,
                sparkline=[price - Decimal(step) / 1000 for step in range(SPARKLINE_POINTS, 0, -1)],
            )
        )
    return rows


def write_one_by_one(rows: list["MarketRow"]) -> None:
    """The naive write of the same fields: Coin and Quote update_or_create, then PricePoint create, per row."""
    from django.utils import timezone

    from market import services
    from market.models import Coin, PricePoint, Quote, Source

    now = timezone.now()
    for row in rows:
        Coin.objects.update_or_create(
            id=row.id,
            defaults={
                "symbol": row.symbol,
                "name": row.name,
                "image_url": row.image[:500],
                "market_cap_rank": row.market_cap_rank,
                "source": Source.COINGECKO,
            },
        )
        Quote.objects.update_or_create(
            coin_id=row.id,
            defaults={
                "current_price": row.current_price,
                "market_cap": row.market_cap,
                "total_volume": row.total_volume,
                "price_change_percentage_24h": row.price_change_percentage_24h,
                "high_24h": row.high_24h,
                "low_24h": row.low_24h,
                "market_cap_rank": row.market_cap_rank,
                "sparkline_7d": services._sparkline(row.sparkline),  # the very value the bulk path stores
                "last_updated": row.last_updated,
                "source": Source.COINGECKO,
                "synced_at": now,
            },
        )
        PricePoint.objects.create(
            coin_id=row.id,
            ts=row.last_updated,
            price=row.current_price,
            market_cap=row.market_cap,
            total_volume=row.total_volume,
        )


def write_bulk(rows: list["MarketRow"]) -> None:
    from market import services

    services.write_market_rows(rows)


@dataclass(frozen=True)
class WriteRun:
    seconds: float
    statements: int
    savepoints: int


def timed_write(write: Callable[[list["MarketRow"]], None], rows: list["MarketRow"]) -> WriteRun:
    """One sync's transaction, commit included; recording each statement costs both paths alike per statement."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    connection.queries_log.clear()  # a full log (9000 entries) would make the captured slice wrong
    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        with transaction.atomic():
            write(rows)
        seconds = time.perf_counter() - started
    # Django logs BEGIN and COMMIT too: every sync has exactly those two, whichever way it writes.
    statements = [query["sql"] for query in captured.captured_queries if query["sql"] not in TRANSACTION_CONTROL]
    savepoints = sum(1 for text in statements if text.startswith(SAVEPOINT_PREFIXES))
    return WriteRun(seconds=seconds, statements=len(statements), savepoints=savepoints)


def check_written(rows: list["MarketRow"], *, rounds: int) -> None:
    """Timing means nothing unless both paths stored the same exact values."""
    from market.models import PricePoint, Quote

    ids = [row.id for row in rows]
    stored = dict(Quote.objects.filter(coin_id__in=ids).values_list("coin_id", "current_price"))
    expected = {row.id: row.current_price for row in rows}
    if stored != expected:
        raise RuntimeError(f"write check: quotes differ from the rows written ({len(stored)} stored)")
    points = PricePoint.objects.filter(coin_id__in=ids).count()
    if points != len(rows) * rounds:
        raise RuntimeError(f"write check: {points} price points, expected {len(rows) * rounds}")


def warm_up_writes(at: datetime) -> None:
    """Both paths once, rolled back: the first timed write should not pay for this process's first ORM calls."""
    from django.db import transaction

    with transaction.atomic():
        write_bulk(market_rows(f"{WRITE_PREFIX}warm-bulk-", round_no=0, at=at))
        write_one_by_one(market_rows(f"{WRITE_PREFIX}warm-each-", round_no=0, at=at))
        transaction.set_rollback(True)


def remove_written_coins() -> None:
    from market.models import Coin

    Coin.objects.filter(id__startswith=WRITE_PREFIX).delete()  # cascades to their quotes and points


@dataclass(frozen=True)
class WriteResult:
    bulk_new: WriteRun
    each_new: WriteRun
    bulk_existing: list[WriteRun]
    each_existing: list[WriteRun]

    @property
    def bulk_statements(self) -> set[int]:
        return {run.statements for run in [self.bulk_new, *self.bulk_existing]}

    @property
    def new_ratio(self) -> float:
        return self.each_new.seconds / self.bulk_new.seconds

    @property
    def existing_ratio(self) -> float:
        bulk = statistics.median(run.seconds for run in self.bulk_existing)
        return statistics.median(run.seconds for run in self.each_existing) / bulk


def measure_writes() -> WriteResult:
    """First sync of 250 new coins, then WRITE_UPDATE_ROUNDS syncs of the same coins; bulk and one by one alternate."""
    remove_written_coins()  # left over if an earlier run was killed between its writes and its cleanup
    at = datetime.now(UTC).replace(microsecond=0)
    bulk_prefix, each_prefix = f"{WRITE_PREFIX}bulk-", f"{WRITE_PREFIX}each-"
    try:
        warm_up_writes(at)
        bulk_new = timed_write(write_bulk, market_rows(bulk_prefix, round_no=0, at=at))
        each_new = timed_write(write_one_by_one, market_rows(each_prefix, round_no=0, at=at))
        bulk_existing, each_existing = [], []
        for round_no in range(1, WRITE_UPDATE_ROUNDS + 1):
            later = at + round_no * timedelta(minutes=5)
            bulk_rows = market_rows(bulk_prefix, round_no=round_no, at=later)
            each_rows = market_rows(each_prefix, round_no=round_no, at=later)
            pair = [(write_bulk, bulk_rows, bulk_existing), (write_one_by_one, each_rows, each_existing)]
            for write, rows, runs in pair if round_no % 2 else pair[::-1]:
                runs.append(timed_write(write, rows))
        check_written(bulk_rows, rounds=WRITE_UPDATE_ROUNDS + 1)
        check_written(each_rows, rounds=WRITE_UPDATE_ROUNDS + 1)
    finally:
        remove_written_coins()
    return WriteResult(bulk_new, each_new, bulk_existing, each_existing)


def report_writes(result: WriteResult) -> None:
    def describe(run: WriteRun) -> str:
        note = f" ({run.savepoints} of them savepoints)" if run.savepoints else ""
        return f"{run.statements} statements{note}, {1000 * run.seconds:.0f} ms"

    print("statements per sync, BEGIN and COMMIT not counted:")
    print(f"new coins:      bulk {describe(result.bulk_new)}; one by one {describe(result.each_new)}")
    print(f"                one by one / bulk = {result.new_ratio:.1f}x")
    for round_no, (bulk, each) in enumerate(zip(result.bulk_existing, result.each_existing, strict=True), start=1):
        print(f"update round {round_no}: bulk {describe(bulk)}; one by one {describe(each)}")
    print(f"                one by one / bulk = {result.existing_ratio:.1f}x (medians of the update rounds)")


# --- 2. cached coin list ----------------------------------------------------------------------------


def seed_market() -> int:
    """The demo market (about 100 coins and 53k points) unless coins are already there; returns the listed coins."""
    from market import selectors
    from market.demo.snapshot import load_snapshot

    loaded = load_snapshot()
    if loaded:
        print(f"loaded the demo market: {loaded['coins']} coins, {loaded['points']} price points")
    listed = selectors.coin_rows().count()
    if not listed:
        raise RuntimeError("no coin with a quote to list: the coin list would be trivially empty")
    return listed


def fetch_coins(base_url: str, headers: dict[str, str]) -> bytes:
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0, trust_env=False) as client:
        response = client.get(COINS_PATH)
    if response.status_code != 200 or not response.json().get("results"):
        raise RuntimeError(f"GET {COINS_PATH} failed or listed nothing: HTTP {response.status_code}")
    return response.content


def publish_cached_bytes(base_url: str, body: bytes) -> None:
    """The bare view serves what the coin list serves: the same bytes, from the same cache."""
    from django.core.cache import cache

    from bench.urls import CACHED_BYTES_KEY  # the project's URLconf loads models: only once Django is set up

    cache.set(CACHED_BYTES_KEY, body, timeout=60 * 60)
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.get(CACHED_BYTES_PATH)
    if response.status_code != 200 or response.content != body:
        raise RuntimeError(f"GET {CACHED_BYTES_PATH} does not serve the coin list's bytes: HTTP {response.status_code}")


def count_coin_queries(access: str, refresh: str) -> float:
    """Queries per warm authenticated GET of the coin list, in process with the same settings, database and cache."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts import services

    client = Client(headers={"Authorization": f"Bearer {access}"})
    warm = client.get(COINS_PATH)  # this host's page is built on the first request
    if warm.status_code != 200:
        raise RuntimeError(f"in-process GET {COINS_PATH} failed: HTTP {warm.status_code}")
    connection.queries_log.clear()  # a full log (9000 entries) would make the captured slice wrong
    with CaptureQueriesContext(connection) as captured:
        for _ in range(QUERY_SAMPLES):
            if client.get(COINS_PATH).status_code != 200:
                raise RuntimeError(f"in-process GET {COINS_PATH} failed during sampling")
    services.end_api_session(raw_refresh=refresh)  # one device session per run, not one left open per run
    return len(captured.captured_queries) / QUERY_SAMPLES


@dataclass(frozen=True)
class ListResult:
    coins_rps: float
    cached_rps: float
    coins_cpu_ms: float
    cached_cpu_ms: float
    failures: int
    queries: float

    @property
    def ratio(self) -> float:
        return self.coins_rps / self.cached_rps if self.cached_rps else 0.0


def measure_coin_list(env: dict[str, str]) -> ListResult:
    from django.core.cache import cache
    from django.db import connections

    from bench.urls import CACHED_BYTES_KEY

    listed = seed_market()
    password = secrets.token_urlsafe(24)
    ensure_bench_user(password)
    connections.close_all()  # no idle connection held through the load run

    try:
        with serving(env) as (server, base_url):
            tokens = obtain_tokens(base_url, password)
            auth = {"Authorization": f"Bearer {tokens['access']}"}
            body = fetch_coins(base_url, auth)
            publish_cached_bytes(base_url, body)
            print(
                f"{listed} coins listed, first page {len(body)} bytes; gunicorn {WORKERS} workers x "
                f"{THREADS_PER_WORKER} threads; {CLIENT_THREADS} keep-alive client threads, "
                f"{ROUNDS} rounds of {ROUND_S:.0f}s per endpoint",
                flush=True,
            )
            # Both get the bearer header: the same request bytes, though only the coin list reads it.
            targets = {"coins": (base_url + COINS_PATH, auth), "cached-bytes": (base_url + CACHED_BYTES_PATH, auth)}
            result = compare_throughput(targets, server.pid)
        queries = count_coin_queries(tokens["access"], tokens["refresh"])
    finally:
        cache.delete(CACHED_BYTES_KEY)
    coins, cached = result["coins"], result["cached-bytes"]
    return ListResult(
        coins_rps=coins.rps,
        cached_rps=cached.rps,
        coins_cpu_ms=coins.cpu_ms,
        cached_cpu_ms=cached.cpu_ms,
        failures=coins.failures + cached.failures,
        queries=queries,
    )


def report_coin_list(result: ListResult) -> None:
    print(
        f"GET {COINS_PATH} (JWT):  {result.coins_rps:7.0f} req/s, {result.coins_cpu_ms:.2f} ms server cpu/req (medians)"
    )
    print(
        f"GET {CACHED_BYTES_PATH}: {result.cached_rps:7.0f} req/s, {result.cached_cpu_ms:.2f} ms server cpu/req (medians)"
    )
    cpu_ratio = result.cached_cpu_ms / result.coins_cpu_ms if result.coins_cpu_ms else 0.0
    print(f"server cpu per request, cached-bytes/coins = {cpu_ratio:.2f}; failed requests: {result.failures}")
    print(f"queries per warm request: {result.queries:.1f}")


# --- 3. history at 10M points ---------------------------------------------------------------------

COINS_SQL = """
INSERT INTO market_coin (id, symbol, name, image_url, logo, market_cap_rank, source, created_at, updated_at)
SELECT 'hist-' || lpad(k::text, 3, '0'), 'h' || k, 'History ' || k, '', '', k + 1, 'demo', %(anchor)s, %(anchor)s
FROM generate_series(0, %(coins)s::int - 1) AS k
"""
# Timestamp-major, coin-minor, as syncs write them: every sync appends one point per coin, so a coin's points
# end up spread over the whole table. The LATERAL reference pins that order (the time series drives the loop).
POINTS_SQL = """
INSERT INTO market_pricepoint (coin_id, ts, price, market_cap, total_volume)
SELECT 'hist-' || lpad(c.k::text, 3, '0'), %(anchor)s::timestamptz - s.n * %(step)s::interval,
       p.price, p.price * 19000000, p.price * 350000
FROM generate_series(%(points)s::int - 1, 0, -1) AS s(n)
CROSS JOIN LATERAL generate_series(0, %(coins)s::int - 1 + 0 * s.n) AS c(k)
CROSS JOIN LATERAL (SELECT (100 + c.k + (s.n %% 1440) * 0.0137)::numeric(38, 18) AS price) AS p
"""


def prepare_history_database(database_url: str, env: dict[str, str], *, coins: int) -> float | None:
    """Create, migrate and fill a history database unless it already holds exactly the points; the load's seconds."""
    ensure_database(database_url)
    migrate({**env, "DATABASE_URL": database_url}, timeout_s=HISTORY_MIGRATE_TIMEOUT_S)
    expected = coins * HISTORY_POINTS_PER_COIN
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        stored = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE coin_id = %(target)s), "
            "min(ts) FILTER (WHERE coin_id = %(target)s), max(ts) FILTER (WHERE coin_id = %(target)s) "
            "FROM market_pricepoint",
            {"target": HISTORY_TARGET},
        ).fetchone()
        first = HISTORY_ANCHOR - (HISTORY_POINTS_PER_COIN - 1) * HISTORY_STEP
        if stored == (expected, HISTORY_POINTS_PER_COIN, first, HISTORY_ANCHOR):  # what this script loads
            return None
        print(f"loading {expected:,} price points into {database_name(database_url)} ...", flush=True)
        started = time.perf_counter()
        params = {"anchor": HISTORY_ANCHOR, "coins": coins, "points": HISTORY_POINTS_PER_COIN, "step": HISTORY_STEP}
        with conn.transaction():  # all or nothing: an interrupted load leaves the previous state, never half of it
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (LOAD_STATEMENT_TIMEOUT,))
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.execute("TRUNCATE market_pricepoint")
            conn.execute("DELETE FROM market_coin WHERE id LIKE %s", ("hist-%",))
            conn.execute(COINS_SQL, params)
            # The coins above exist in this transaction: checking 10M foreign keys one by one would only
            # repeat that (replica mode skips the FK triggers; indexes and check constraints still apply).
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(POINTS_SQL, params)
        # Hint bits and the visibility map set now, statistics fresh, dirty pages flushed: the timed reads
        # below then neither write nor race a checkpoint.
        conn.execute("VACUUM (ANALYZE) market_pricepoint")
        conn.execute("ANALYZE market_coin")
        conn.execute("CHECKPOINT")
        return time.perf_counter() - started


@contextmanager
def database_named(name: str) -> Iterator[None]:
    """Point Django's default connection at another database on the same server, as the test runner does."""
    from django.db import connection

    original = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = original


@dataclass(frozen=True)
class TableFacts:
    window_points: int
    heap_pages: int
    scan: str
    buffers: str
    query_p50_ms: float


def table_facts() -> TableFacts:
    """How the history query runs here: its scan, heap pages, buffers and server-side time (EXPLAIN ANALYZE)."""
    from django.db import connection

    from market.models import PricePoint

    since = HISTORY_ANCHOR - timedelta(days=HISTORY_DAYS)
    # The queryset selectors._points builds for price_history(coin, days=30).
    query = (
        PricePoint.objects.filter(coin_id=HISTORY_TARGET, ts__gte=since)
        .order_by("ts")
        .values_list("ts", "price", "market_cap", "total_volume")
    )
    lines = query.explain(analyze=True, buffers=True).splitlines()
    scan = next((line for line in lines if " Scan " in line), lines[0]).split("  (")[0].strip(" ->")
    buffers = next((line.strip() for line in lines if line.strip().startswith("Buffers:")), "Buffers: ?")
    # Without per-node timing: the server's cost alone, no rows shipped or turned into Python objects.
    executions = []
    for _ in range(QUERY_RUNS):
        plan = query.explain(analyze=True, timing=False).splitlines()
        executions.append(float(next(line for line in plan if line.startswith("Execution Time:")).split()[2]))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (ctid::text::point)[0]) FROM market_pricepoint "
            "WHERE coin_id = %s AND ts >= %s",
            [HISTORY_TARGET, since],
        )
        window_points, heap_pages = cursor.fetchone()
    return TableFacts(
        window_points=window_points,
        heap_pages=heap_pages,
        scan=scan,
        buffers=buffers,
        query_p50_ms=statistics.median(executions),
    )


def time_history_block(runs: int, deadline: float) -> tuple[list[float], dict]:
    """price_history(coin, days=30) on a warm connection: per-call seconds, and the last answer."""
    from market import selectors
    from market.models import Coin

    coin = Coin.objects.get(pk=HISTORY_TARGET)
    answer: dict = {}
    for _ in range(HISTORY_WARMUP_RUNS):
        answer = selectors.price_history(coin, days=HISTORY_DAYS, now=HISTORY_ANCHOR)
    timings = []
    while len(timings) < runs and time.perf_counter() < deadline:
        started = time.perf_counter()
        answer = selectors.price_history(coin, days=HISTORY_DAYS, now=HISTORY_ANCHOR)
        timings.append(time.perf_counter() - started)
    return timings, answer


@dataclass(frozen=True)
class HistoryResult:
    baseline: TableFacts
    large: TableFacts
    baseline_p50_ms: float
    large_p50_ms: float
    baseline_runs: int
    large_runs: int
    answer_points: int
    load_seconds: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.large_p50_ms / self.baseline_p50_ms if self.baseline_p50_ms else float("inf")

    @property
    def query_ratio(self) -> float:
        if not self.baseline.query_p50_ms:
            return float("inf")
        return self.large.query_p50_ms / self.baseline.query_p50_ms


def measure_history(database_url: str, env: dict[str, str]) -> HistoryResult:
    databases = {BASELINE_DATABASE: 1, HISTORY_DATABASE: HISTORY_COINS}
    load_seconds = {}
    for name, coins in databases.items():
        seconds = prepare_history_database(with_database(database_url, name), env, coins=coins)
        if seconds is not None:
            load_seconds[name] = seconds
            print(f"loaded {name} in {seconds:.0f}s (vacuum, analyze and checkpoint included)", flush=True)

    timings: dict[str, list[float]] = {name: [] for name in databases}
    answers: dict[str, dict] = {}
    # Short blocks in A B B A order, repeated: a burst of other load on the box lands on both tables alike.
    order = [BASELINE_DATABASE, HISTORY_DATABASE, HISTORY_DATABASE, BASELINE_DATABASE]
    deadline = time.perf_counter() + HISTORY_MAX_S
    for name in order * (HISTORY_RUNS // (2 * HISTORY_BLOCK_RUNS)):
        with database_named(name):
            block, answers[name] = time_history_block(HISTORY_BLOCK_RUNS, deadline)
            timings[name].extend(block)
    facts: dict[str, TableFacts] = {}
    for name in databases:
        with database_named(name):
            facts[name] = table_facts()
    if answers[BASELINE_DATABASE] != answers[HISTORY_DATABASE]:
        raise RuntimeError("history check: the coin's answer differs between the two tables")
    return HistoryResult(
        baseline=facts[BASELINE_DATABASE],
        large=facts[HISTORY_DATABASE],
        baseline_p50_ms=1000 * statistics.median(timings[BASELINE_DATABASE]),
        large_p50_ms=1000 * statistics.median(timings[HISTORY_DATABASE]),
        baseline_runs=len(timings[BASELINE_DATABASE]),
        large_runs=len(timings[HISTORY_DATABASE]),
        answer_points=len(answers[HISTORY_DATABASE]["prices"]),
        load_seconds=load_seconds,
    )


def report_history(result: HistoryResult) -> None:
    print(
        f"price_history({HISTORY_TARGET}, days={HISTORY_DAYS}): {result.large.window_points} stored points in the "
        f"window -> {result.answer_points} hourly points"
    )
    for label, facts, p50, runs in [
        ("100k table", result.baseline, result.baseline_p50_ms, result.baseline_runs),
        ("10M table ", result.large, result.large_p50_ms, result.large_runs),
    ]:
        print(
            f"{label}: price_history p50 {p50:.1f} ms over {runs} runs; "
            f"query alone p50 {facts.query_p50_ms:.1f} ms server-side ({facts.scan}, {facts.heap_pages} heap pages, "
            f"{facts.buffers})"
        )
    print(
        f"10M/100k: price_history p50 {result.ratio:.2f}, query alone {result.query_ratio:.1f}x "
        f"(rows turned into Python objects dominate: {result.large.window_points} rows in, {result.answer_points} out)"
    )


# --- main --------------------------------------------------------------------------------------------


def main() -> int:
    started = time.perf_counter()
    install_sigterm_handler()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    env = server_env(database_url, redis_url, secrets.token_urlsafe(50))

    ensure_database(database_url)
    migrate(env)
    setup_django(env)

    print(f"== 1. sync write path, {WRITE_COINS} coins ==", flush=True)
    section = time.perf_counter()
    writes = measure_writes()
    report_writes(writes)
    print(f"(section took {elapsed_since(section)})")

    print(f"== 2. warm GET {COINS_PATH} against cached bytes ==", flush=True)
    section = time.perf_counter()
    listing = measure_coin_list(env)
    report_coin_list(listing)
    print(f"(section took {elapsed_since(section)})")

    print(f"== 3. one coin's {HISTORY_DAYS}-day history, 100k vs 10M stored points ==", flush=True)
    section = time.perf_counter()
    history = measure_history(database_url, env)
    report_history(history)
    print(f"(section took {elapsed_since(section)})")

    statements_ok = writes.bulk_statements == {TARGET_STATEMENTS}
    list_ok = listing.ratio >= TARGET_RATIO and listing.queries <= TARGET_QUERIES and listing.failures == 0
    history_ok = history.ratio <= TARGET_HISTORY_RATIO
    passed = statements_ok and list_ok and history_ok
    bulk_statements = "/".join(str(count) for count in sorted(writes.bulk_statements))
    failures_note = f", {listing.failures} failed requests" if listing.failures else ""
    print(f"total {elapsed_since(started)}")
    print(
        f"market bench: write statements = {bulk_statements} (target {TARGET_STATEMENTS}), one by one "
        f"{writes.new_ratio:.0f}x / {writes.existing_ratio:.0f}x slower (new / existing coins); "
        f"coins/cached-bytes = {listing.ratio:.2f} (target >= {TARGET_RATIO}), "
        f"queries/request = {listing.queries:.1f} (target <= {TARGET_QUERIES:g}){failures_note}; "
        f"history p50 10M/100k = {history.ratio:.2f} (target <= {TARGET_HISTORY_RATIO}) -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
