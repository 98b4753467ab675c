"""Backtest bench: the engine against backtesting.py on 5 years of hourly bars, and 100 queued backtests on a
real Celery worker while gunicorn serves the API."""

import logging
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/backtest.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import backtesting  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting.lib import FractionalBacktest, crossover  # noqa: E402

from bench.common import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    EMAIL,
    START_TIMEOUT_S,
    THREADS_PER_WORKER,
    WORKERS,
    celery_worker,
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
from strategies.engine import backtest as engine  # noqa: E402
from strategies.engine import metrics  # noqa: E402

if TYPE_CHECKING:
    import subprocess

    from celery import Celery

    from strategies.models import Strategy

# --- 1. the engine against backtesting.py ---
HOURLY_BARS = 5 * 365 * 24  # 43,800
HOUR_MS = 3_600_000
SERIES_START_MS = int(datetime(2021, 1, 1, tzinfo=UTC).timestamp() * 1000)
SEED = 2026
DRIFT_PER_HOUR = 0.0004 / 24  # the engine tests' daily walk, scaled to hours
SIGMA_PER_HOUR = 0.035 / 24**0.5
FAST, SLOW = 20, 50
CAPITAL = 10_000.0
FEE = 0.001
FRACTIONAL_UNIT = 1e-9  # as strategies/tests/test_engine.py
REPETITIONS = 7  # timed runs of each, alternating, after one untimed run of each
ENGINES_MAX_S = 60.0
MIN_TRADES = 100  # the series must really trade for the comparison to mean anything
TOLERANCE = 1e-6
TARGET_SPEEDUP = 10.0

# --- 2. queued backtests on a worker, the API meanwhile ---
# Its own database: backtest rows come and go every run, and the other benches and test runs never see them.
DATABASE = "cryptodesk_bench_backtest"
# Cached user rows are keyed by user id: without their own prefix they would collide with the other benches' users.
CACHE_KEY_PREFIX = "cryptodesk-bench-backtest"
QUEUE_PREFIX = "bench-backtest-"  # plus a fresh suffix every run: the worker consumes this run's messages only
WORKER_NODENAME = "bench-backtest@%h"  # fixed, so its control queue is the same key in Redis run after run
TASK_NAME = "strategies.tasks.run_backtest_task"
STRATEGY_NAME = "bench sma 20/50"
COIN = "bitcoin"
TIMEFRAME = "1d"
BACKTEST_CAPITAL = Decimal(10_000)  # the API's defaults
BACKTEST_FEE_BPS = Decimal(10)
BACKTEST_SLIPPAGE_BPS = Decimal(0)
QUEUED = 100
WARMUP_TIMEOUT_S = 60.0  # includes the worker's own start: imports, Django setup, broker connection
QUEUE_TIMEOUT_S = 90.0
POLL_S = 0.05
DETAIL_PATH = "/api/v1/backtests/{id}/"
PROBE_INTERVAL_S = 0.01  # one request every 10 ms from one keep-alive client: a light, steady load
IDLE_S = 3.0  # before and after the busy window
MAX_PROBES = 20_000
TARGET_P95_RATIO = 2.0
FAIL_P95_RATIO = 3.0  # two cores shared by gunicorn, the worker, PostgreSQL and this process
DONE = ("succeeded", "failed")


def elapsed_since(started: float) -> str:
    return f"{time.perf_counter() - started:.1f}s"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))] if ordered else 0.0


# --- 1. the engine against backtesting.py ---------------------------------------------------------


def random_walk() -> tuple[np.ndarray, np.ndarray]:
    """Seeded hourly closes: every run and both libraries see the same series."""
    rng = np.random.default_rng(SEED)
    close = 100 * np.exp(np.cumsum(rng.normal(DRIFT_PER_HOUR, SIGMA_PER_HOUR, HOURLY_BARS)))
    times = SERIES_START_MS + np.arange(HOURLY_BARS, dtype=np.int64) * HOUR_MS
    return times, close


def run_ours(times: np.ndarray, close: np.ndarray) -> tuple[float, int, float, float]:
    """(total return, trades, seconds in backtest.run, seconds in metrics.compute)."""
    started = time.perf_counter()
    simulation = engine.run(
        kind="sma_crossover",
        params={"fast": FAST, "slow": SLOW},
        times=times,
        close=close,
        capital=CAPITAL,
        fee_bps=FEE * 10_000,
        slippage_bps=0.0,
    )
    simulated = time.perf_counter()
    figures = metrics.compute(simulation, capital=CAPITAL)
    finished = time.perf_counter()
    return figures["total_return"], figures["trades"], simulated - started, finished - simulated


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window).mean().to_numpy()


class SmaCross(backtesting.Strategy):
    """The engine's rules in backtesting.py: all-in on the fast SMA crossing above the slow, out on the reverse."""

    fast = FAST
    slow = SLOW
    bars = 0  # the real bars: no entry on the last one, nor on the repeated bar after it

    def init(self) -> None:
        self.fast_sma = self.I(rolling_mean, self.data.Close, self.fast)
        self.slow_sma = self.I(rolling_mean, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_sma, self.slow_sma) and not self.position and len(self.data) < self.bars:
            self.buy()
        elif crossover(self.slow_sma, self.fast_sma) and self.position:
            self.position.close()


def reference_frame(times: np.ndarray, close: np.ndarray) -> pd.DataFrame:
    """backtesting.py closes what is still open at the close before its last bar: one repeated bar at the end
    makes that the real last close, the convention strategies/tests/test_engine.py holds both engines to."""
    padded = np.append(close, close[-1])
    index = pd.to_datetime(np.append(times, times[-1] + HOUR_MS), unit="ms")
    return pd.DataFrame(
        {"Open": padded, "High": padded, "Low": padded, "Close": padded, "Volume": np.ones(len(padded))}, index=index
    )


def run_theirs(frame: pd.DataFrame, bars: int) -> tuple[float, int]:
    test = FractionalBacktest(
        frame,
        SmaCross,
        cash=CAPITAL,
        commission=FEE,
        trade_on_close=True,
        finalize_trades=True,
        fractional_unit=FRACTIONAL_UNIT,
    )
    stats = test.run(bars=bars)
    return stats["Return [%]"] / 100, int(stats["# Trades"])


@dataclass(frozen=True)
class EngineResult:
    ours_s: list[float]
    ours_run_s: list[float]
    ours_metrics_s: list[float]
    theirs_s: list[float]
    ours: set[tuple[float, int]]  # every distinct (total return, trades) a run gave
    theirs: set[tuple[float, int]]

    @property
    def speedup(self) -> float:
        return statistics.median(self.theirs_s) / statistics.median(self.ours_s)

    @property
    def deterministic(self) -> bool:
        return len(self.ours) == 1 and len(self.theirs) == 1

    @property
    def return_difference(self) -> float:
        (ours_return, _), (theirs_return, _) = min(self.ours), min(self.theirs)
        return abs(ours_return - theirs_return)

    @property
    def trades(self) -> tuple[int, int]:
        return min(self.ours)[1], min(self.theirs)[1]

    @property
    def matches(self) -> bool:
        ours, theirs = self.trades
        return self.deterministic and ours == theirs >= MIN_TRADES and self.return_difference <= TOLERANCE

    @property
    def passed(self) -> bool:
        return self.matches and self.speedup >= TARGET_SPEEDUP


def measure_engines() -> EngineResult:
    """Both on the same arrays, alternating run by run so drift on the machine hits both alike."""
    times, close = random_walk()
    frame = reference_frame(times, close)  # built once and not timed: it only favours backtesting.py
    bars = len(close)
    ours_first = run_ours(times, close)  # untimed: first allocations, lazy imports, caches
    theirs_first = run_theirs(frame, bars)
    outcomes_ours, outcomes_theirs = {ours_first[:2]}, {theirs_first}
    ours_s, ours_run_s, ours_metrics_s, theirs_s = [], [], [], []

    def ours() -> None:
        started = time.perf_counter()
        total_return, trades, run_s, metrics_s = run_ours(times, close)
        ours_s.append(time.perf_counter() - started)
        ours_run_s.append(run_s)
        ours_metrics_s.append(metrics_s)
        outcomes_ours.add((total_return, trades))

    def theirs() -> None:
        started = time.perf_counter()
        outcome = run_theirs(frame, bars)
        theirs_s.append(time.perf_counter() - started)
        outcomes_theirs.add(outcome)

    deadline = time.perf_counter() + ENGINES_MAX_S
    for repetition in range(REPETITIONS):
        if time.perf_counter() > deadline:
            print(f"stopped after {repetition} repetitions: over {ENGINES_MAX_S:.0f}s")
            break
        pair: list[Callable[[], None]] = [ours, theirs]
        for measure in pair if repetition % 2 == 0 else pair[::-1]:
            measure()
    return EngineResult(ours_s, ours_run_s, ours_metrics_s, theirs_s, outcomes_ours, outcomes_theirs)


def report_engines(result: EngineResult) -> None:
    ours_trades, theirs_trades = result.trades
    (ours_return, _), (theirs_return, _) = min(result.ours), min(result.theirs)
    print(
        f"sma_crossover {FAST}/{SLOW}, {HOURLY_BARS:,} hourly bars (seed {SEED}), fee {FEE:g} per side, "
        f"capital {CAPITAL:,.0f}"
    )
    print(f"trades: ours {ours_trades}, backtesting.py {theirs_trades}")
    print(
        f"total return: ours {ours_return:.12f}, backtesting.py {theirs_return:.12f}, "
        f"difference {result.return_difference:.2e} (tolerance {TOLERANCE:g})"
    )
    if not result.deterministic:
        print(f"results varied between runs: ours {sorted(result.ours)}, backtesting.py {sorted(result.theirs)}")
    ours_ms = 1000 * statistics.median(result.ours_s)
    print(
        f"median of {len(result.ours_s)} runs: ours {ours_ms:.2f} ms (backtest.run "
        f"{1000 * statistics.median(result.ours_run_s):.2f} ms + metrics.compute "
        f"{1000 * statistics.median(result.ours_metrics_s):.2f} ms); backtesting.py "
        f"{1000 * statistics.median(result.theirs_s):.0f} ms"
    )
    print(f"speed-up: {result.speedup:.0f}x (target >= {TARGET_SPEEDUP:.0f}x)")


# --- 2. queued backtests on a worker, the API meanwhile -----------------------------------------------


def seed_market() -> None:
    """The demo market unless coins are already there. Its after-write tasks run here (eager), not on the broker:
    no worker of this bench consumes the default queue, and nothing should be left waiting there."""
    from cryptodesk.celery import app
    from market.demo.snapshot import load_snapshot

    key = "CELERY_TASK_ALWAYS_EAGER"  # the app reads Django's settings under the CELERY namespace
    eager = app.conf[key]
    trace_log = logging.getLogger("celery.app.trace")  # one INFO line per eager task otherwise
    level = trace_log.level
    app.conf[key] = True
    trace_log.setLevel(logging.WARNING)
    try:
        loaded = load_snapshot()
    finally:
        app.conf[key] = eager
        trace_log.setLevel(level)
    if loaded:
        print(f"loaded the demo market: {loaded['coins']} coins, {loaded['points']} price points")


@dataclass(frozen=True)
class Fixture:
    strategy: "Strategy"
    start: datetime
    end: datetime
    points: int


def prepare(password: str) -> Fixture:
    """The bench user, and a fresh strategy on bitcoin 1d (the previous run's, with its backtests, deleted)."""
    from django.db.models import Count, Max, Min

    from market.models import Coin, PricePoint
    from strategies import services
    from strategies.models import Strategy

    seed_market()
    user = ensure_user(EMAIL, password, display_name="Bench")
    Strategy.objects.filter(owner=user, name=STRATEGY_NAME).delete()
    strategy = services.create_strategy(
        owner=user,
        name=STRATEGY_NAME,
        kind="sma_crossover",
        params={"fast": FAST, "slow": SLOW},
        coin=Coin.objects.get(pk=COIN),
        timeframe=TIMEFRAME,
    )
    span = PricePoint.objects.filter(coin_id=COIN).aggregate(first=Min("ts"), last=Max("ts"), points=Count("pk"))
    if not span["points"]:
        raise RuntimeError(f"no {COIN} history in the bench database")
    return Fixture(strategy=strategy, start=span["first"], end=span["last"], points=span["points"])


def create_queued(fixture: Fixture, count: int) -> list[str]:
    """Queued rows with the inputs strategies.services.queue_backtest freezes, without its on-commit send."""
    from strategies.models import Backtest

    strategy = fixture.strategy
    rows = [
        Backtest(
            strategy=strategy,
            owner=strategy.owner,
            kind=strategy.kind,
            params=dict(strategy.params),
            coin=strategy.coin,
            timeframe=strategy.timeframe,
            start=fixture.start,
            end=fixture.end,
            initial_capital=BACKTEST_CAPITAL,
            fee_bps=BACKTEST_FEE_BPS,
            slippage_bps=BACKTEST_SLIPPAGE_BPS,
        )
        for _ in range(count)
    ]
    Backtest.objects.bulk_create(rows)
    return [str(row.pk) for row in rows]


def send(app: "Celery", queue: str, ids: list[str]) -> None:
    for backtest_id in ids:
        app.send_task(TASK_NAME, args=[backtest_id], queue=queue)


def wait_until_done(ids: list[str], worker: "subprocess.Popen", timeout_s: float) -> int:
    """Poll the rows until every one has succeeded or failed, the worker exits, or timeout_s passes; returns how
    many are done."""
    from strategies.models import Backtest

    deadline = time.monotonic() + timeout_s
    while True:
        done = Backtest.objects.filter(pk__in=ids, status__in=DONE).count()
        if done == len(ids) or time.monotonic() > deadline:
            return done
        if worker.poll() is not None:
            raise RuntimeError(f"the celery worker exited with code {worker.returncode}")
        time.sleep(POLL_S)


def delete_queue(app: "Celery", queue: str) -> None:
    """This run's queue and its binding leave Redis with the run (a failed run may leave messages in it)."""
    with app.connection_for_write() as connection:
        bound = app.amqp.queues[queue].bind(connection.default_channel)
        bound.declare()  # a channel only deletes the bindings it knows of
        bound.delete()


@dataclass
class Latency:
    seconds: list[float]
    failures: int = 0

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.seconds) if self.seconds else 0.0

    @property
    def p95_ms(self) -> float:
        return 1000 * percentile(self.seconds, 0.95)

    def describe(self) -> str:
        worst = 1000 * max(self.seconds, default=0.0)
        return (
            f"p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, max {worst:.1f} ms over {len(self.seconds)} requests"
        )


def probe(
    url: str,
    headers: dict[str, str],
    *,
    max_s: float,
    into: Latency,
    stop: threading.Event | None = None,
    connected: threading.Event | None = None,
) -> Latency:
    """One keep-alive client, one request every PROBE_INTERVAL_S (at once if the last one took longer), until
    `stop` is set, max_s passes or MAX_PROBES requests were made; each request's wall time is recorded."""
    with httpx.Client(headers=headers, timeout=10.0, trust_env=False) as client:
        client.get(url)  # opens the connection before the clock starts
        if connected is not None:
            connected.set()
        started = time.perf_counter()
        next_at = started
        while (
            (stop is None or not stop.is_set())
            and time.perf_counter() - started < max_s
            and len(into.seconds) + into.failures < MAX_PROBES
        ):
            before = time.perf_counter()
            try:
                ok = client.get(url).status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                into.seconds.append(time.perf_counter() - before)
            else:
                into.failures += 1
            next_at = max(next_at + PROBE_INTERVAL_S, time.perf_counter())  # late: no burst to catch up
            time.sleep(next_at - time.perf_counter() if next_at > time.perf_counter() else 0.0)
    return into


@dataclass(frozen=True)
class QueueResult:
    statuses: dict[str, int]
    errors: list[str]
    distinct_metrics: int  # the same inputs must give the same figures on every run
    bars: int
    trades: int
    seconds: float  # first send to the last finished_at
    first_pickup_s: float
    run_ms_p50: float  # claimed → finished, inside the task
    worker_cpu_ms: float
    idle: Latency
    busy: Latency
    detail_bytes: int

    @property
    def throughput(self) -> float:
        return QUEUED / self.seconds if self.seconds > 0 else 0.0

    @property
    def all_succeeded(self) -> bool:
        return self.statuses.get("succeeded", 0) == QUEUED and self.distinct_metrics == 1

    @property
    def p95_ratio(self) -> float:
        return self.busy.p95_ms / self.idle.p95_ms if self.idle.p95_ms else float("inf")

    @property
    def responsive(self) -> bool:
        enough = len(self.idle.seconds) >= 20 and len(self.busy.seconds) >= 20
        return enough and not self.idle.failures and not self.busy.failures and self.p95_ratio <= FAIL_P95_RATIO

    @property
    def passed(self) -> bool:
        return self.all_succeeded and self.responsive


def warm_up(app: "Celery", queue: str, worker: "subprocess.Popen", fixture: Fixture) -> str:
    """One backtest through the worker before any clock starts: it proves the worker consumes the queue, and
    pays for its first task (imports, the database connection). Its finished row is what the API probe reads."""
    from strategies.models import Backtest

    (warm_id,) = create_queued(fixture, 1)
    send(app, queue, [warm_id])
    if wait_until_done([warm_id], worker, WARMUP_TIMEOUT_S) != 1:
        raise RuntimeError(f"the worker did not finish the warm-up backtest within {WARMUP_TIMEOUT_S:.0f}s")
    warm = Backtest.objects.get(pk=warm_id)
    if warm.status != Backtest.Status.SUCCEEDED:
        raise RuntimeError(f"the warm-up backtest {warm.status}: {warm.error}")
    return warm_id


def measure_queue(
    app: "Celery", queue: str, worker: "subprocess.Popen", base_url: str, access: str, fixture: Fixture
) -> QueueResult:
    from django.db import connections

    from strategies.models import Backtest

    warm_id = warm_up(app, queue, worker, fixture)
    url = base_url + DETAIL_PATH.format(id=warm_id)
    headers = {"Authorization": f"Bearer {access}"}
    with httpx.Client(headers=headers, timeout=10.0, trust_env=False) as client:
        response = client.get(url)
    if response.status_code != 200 or response.json().get("status") != "succeeded":
        raise RuntimeError(f"GET {DETAIL_PATH} of the warm-up backtest failed: HTTP {response.status_code}")
    ids = create_queued(fixture, QUEUED)  # before any window: writing the rows is not the worker's load

    idle = Latency([])
    probe(url, headers, max_s=IDLE_S, into=idle)

    busy = Latency([])
    stop, connected = threading.Event(), threading.Event()
    prober = threading.Thread(
        target=probe,
        args=(url, headers),
        kwargs={"max_s": QUEUE_TIMEOUT_S, "into": busy, "stop": stop, "connected": connected},
        daemon=True,
    )
    prober.start()
    if not connected.wait(timeout=START_TIMEOUT_S):
        raise RuntimeError("the latency probe could not connect")
    cpu_before = server_cpu_seconds(worker.pid)
    sent_at = time.time()  # wall clock: compared with the rows' finished_at, which the worker stamps
    try:
        send(app, queue, ids)
        done = wait_until_done(ids, worker, QUEUE_TIMEOUT_S)
    finally:
        stop.set()
        prober.join(timeout=15)
    worker_cpu = server_cpu_seconds(worker.pid) - cpu_before
    if done != len(ids):
        print(f"only {done} of {len(ids)} backtests finished within {QUEUE_TIMEOUT_S:.0f}s")

    probe(url, headers, max_s=IDLE_S, into=idle)  # idle again: before and after, so drift hits both windows

    rows = list(
        Backtest.objects.filter(pk__in=ids).values(
            "status", "error", "started_at", "finished_at", "bars", "metrics", "trades"
        )
    )
    connections.close_all()
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    finished = [row for row in rows if row["finished_at"] is not None]
    started = [row["started_at"] for row in rows if row["started_at"] is not None]
    run_times = [
        (row["finished_at"] - row["started_at"]).total_seconds() for row in finished if row["started_at"] is not None
    ]
    last = max((row["finished_at"] for row in finished), default=None)
    return QueueResult(
        statuses=statuses,
        errors=sorted({row["error"] for row in rows if row["error"]}),
        distinct_metrics=len({repr(sorted(row["metrics"].items())) for row in rows if row["status"] == "succeeded"}),
        bars=max((row["bars"] for row in rows), default=0),
        trades=max((len(row["trades"]) for row in rows), default=0),
        seconds=last.timestamp() - sent_at if last is not None else 0.0,
        first_pickup_s=min(started).timestamp() - sent_at if started else 0.0,
        run_ms_p50=1000 * statistics.median(run_times) if run_times else 0.0,
        worker_cpu_ms=1000 * worker_cpu / max(len(finished), 1),
        idle=idle,
        busy=busy,
        detail_bytes=len(response.content),
    )


def report_queue(result: QueueResult, fixture: Fixture) -> None:
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(result.statuses.items()))
    print(
        f"{QUEUED} backtests of sma_crossover {FAST}/{SLOW} on {COIN} {TIMEFRAME} "
        f"({fixture.points} stored points -> {result.bars} bars, {result.trades} trades each): {statuses}"
    )
    if result.distinct_metrics > 1:
        print(f"the same inputs gave {result.distinct_metrics} different sets of metrics")
    for error in result.errors[:5]:
        print(f"  error: {error[:200]}")
    print(
        f"first queued to last finished: {result.seconds:.2f}s: {result.throughput:.1f} backtests/s "
        f"({1000 * result.seconds / QUEUED:.1f} ms each); first claimed after {1000 * result.first_pickup_s:.0f} ms; "
        f"claim to finish p50 {result.run_ms_p50:.1f} ms; worker cpu {result.worker_cpu_ms:.1f} ms/backtest"
    )
    print(
        f"GET {DETAIL_PATH} ({result.detail_bytes:,} bytes, one request every {1000 * PROBE_INTERVAL_S:.0f} ms "
        f"from one client):"
    )
    print(f"  worker idle ({IDLE_S:.0f}s before and after): {result.idle.describe()}")
    print(f"  worker busy:                       {result.busy.describe()}")
    failures = result.idle.failures + result.busy.failures
    if failures:
        print(f"  {failures} requests failed")
    print(
        f"p95 busy / idle = {result.p95_ratio:.2f} (target <= {TARGET_P95_RATIO:.0f}, fails above "
        f"{FAIL_P95_RATIO:.0f}); p50 busy / idle = {result.busy.p50_ms / max(result.idle.p50_ms, 1e-9):.2f}"
    )


# --- main -------------------------------------------------------------------------------------------


def main() -> int:
    started = time.perf_counter()
    install_sigterm_handler()
    own_url = os.environ.get("BENCH_BACKTEST_DATABASE_URL")
    database_url = own_url or with_database(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), DATABASE)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("BENCH_BACKTEST_DATABASE_URL" if own_url else "DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    env = {**server_env(database_url, redis_url, secrets.token_urlsafe(50)), "CACHE_KEY_PREFIX": CACHE_KEY_PREFIX}

    # First, with nothing else of the bench running on the machine.
    print(f"== 1. the engine against backtesting.py, {HOURLY_BARS:,} hourly bars ==", flush=True)
    section = time.perf_counter()
    engines = measure_engines()
    report_engines(engines)
    print(f"(section took {elapsed_since(section)})")

    ensure_database(database_url)
    migrate(env)
    setup_django(env)
    from django.db import connections

    from accounts import services as accounts_services
    from cryptodesk.celery import app

    section = time.perf_counter()
    password = secrets.token_urlsafe(24)
    fixture = prepare(password)
    connections.close_all()  # no idle connection held through the run
    print(f"(data ready in {elapsed_since(section)})", flush=True)

    print(
        f"== 2. {QUEUED} queued backtests on one worker (solo pool), gunicorn {WORKERS} workers x "
        f"{THREADS_PER_WORKER} threads ==",
        flush=True,
    )
    section = time.perf_counter()
    queue = f"{QUEUE_PREFIX}{uuid.uuid4().hex[:12]}"
    refresh = None
    try:
        with celery_worker(env, queue, WORKER_NODENAME) as worker, serving(env) as (_, base_url):
            tokens = obtain_tokens(base_url, password)
            refresh = tokens["refresh"]
            queued = measure_queue(app, queue, worker, base_url, tokens["access"], fixture)
    finally:
        delete_queue(app, queue)
        if refresh is not None:  # one device session per run, not one left open per run
            accounts_services.end_api_session(raw_refresh=refresh)
    report_queue(queued, fixture)
    print(f"(section took {elapsed_since(section)})")

    passed = engines.passed and queued.passed
    ours_trades, theirs_trades = engines.trades
    print(f"total {elapsed_since(started)}")
    print(
        f"backtest bench: engine {engines.speedup:.0f}x faster than backtesting.py (target >= {TARGET_SPEEDUP:.0f}x), "
        f"trades {ours_trades}/{theirs_trades}, return difference {engines.return_difference:.1e} "
        f"(target equal, <= {TOLERANCE:g}); worker {queued.throughput:.1f} backtests/s, "
        f"{queued.statuses.get('succeeded', 0)}/{QUEUED} succeeded (target all); API p95 busy/idle "
        f"{queued.p95_ratio:.2f} (target <= {TARGET_P95_RATIO:.0f}, fail > {FAIL_P95_RATIO:.0f}) -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
