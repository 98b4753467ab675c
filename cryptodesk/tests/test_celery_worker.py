"""A real Celery worker, over the real broker, runs a task against the real database."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import DeviceSession
from accounts.tasks import purge_expired_sessions_task
from conftest import make_user
from cryptodesk.celery import app
from market.models import Coin, PricePoint, Quote, SyncRun
from market.tests.payloads import market_row

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs a broker: set REDIS_URL (CI does)"),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="the worker is another process: needs a shared database server (set DATABASE_URL; CI does)",
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


class _CoinGeckoDouble(BaseHTTPRequestHandler):
    """A CoinGecko stand-in on loopback: /coins/markets answers two coins."""

    def do_GET(self) -> None:
        if not self.path.startswith("/api/v3/coins/markets"):
            self.send_error(404)
            return
        body = json.dumps([market_row("bitcoin", "btc", 64000.5, rank=1), market_row("ethereum", "eth", 3100, rank=2)])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def coingecko_double():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CoinGeckoDouble)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def worker_queue(coingecko_double):
    """Start a worker on a queue of its own, so no other worker can take our task."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "COINGECKO_BASE_URL": coingecko_double,
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DATABASE_URL": _database_url(),  # the test database this test writes to
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running celery
        [sys.executable, "-m", "celery", "-A", "cryptodesk", "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def stop() -> str:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return output

    try:
        yield queue, stop
    finally:
        if process.poll() is None:
            stop()


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task is the point here
@pytest.mark.django_db(transaction=True)
def test_worker_purges_expired_sessions(worker_queue):
    queue, stop_worker = worker_queue
    user = make_user("worker@example.com")
    now = timezone.now()
    long_ago = now - timedelta(days=3)
    expired = DeviceSession.objects.create(user=user, kind="api", created_at=long_ago, expires_at=long_ago)
    live = DeviceSession.objects.create(user=user, kind="api", expires_at=now + timedelta(days=7))

    # send_task always goes through the broker (the test settings run .delay() eagerly)
    result = app.send_task(purge_expired_sessions_task.name, queue=queue)

    deadline = time.monotonic() + 60
    while DeviceSession.objects.filter(pk=expired.pk).exists():
        assert time.monotonic() < deadline, "the worker did not run the task within 60 s"
        time.sleep(0.25)
    assert DeviceSession.objects.filter(pk=live.pk).exists()
    log = stop_worker()
    assert f"Task accounts.tasks.purge_expired_sessions_task[{result.id}] succeeded" in log


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
@pytest.mark.django_db(transaction=True)
def test_worker_syncs_markets_end_to_end_from_a_local_double(worker_queue):
    queue, stop_worker = worker_queue
    run = SyncRun.objects.create(kind=SyncRun.Kind.MARKETS)
    result = app.send_task("market.tasks.sync_markets_task", kwargs={"sync_run_id": run.pk}, queue=queue)
    deadline = time.monotonic() + 60
    while SyncRun.objects.get(pk=run.pk).status in {SyncRun.Status.QUEUED, SyncRun.Status.RUNNING}:
        assert time.monotonic() < deadline, "the worker did not finish the sync within 60 s"
        time.sleep(0.25)
    run.refresh_from_db()
    log = stop_worker()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.coins_upserted, run.points_written, run.api_calls) == (2, 2, 1)
    assert Quote.objects.get(coin_id="bitcoin").current_price == Decimal("64000.5")
    assert f"Task market.tasks.sync_markets_task[{result.id}] succeeded" in log


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
@pytest.mark.django_db(transaction=True)
def test_worker_runs_a_backtest_end_to_end(worker_queue):
    from strategies.models import Backtest, Strategy

    queue, stop_worker = worker_queue
    coin = Coin.objects.create(id="walk", symbol="wlk", name="Walk")
    start = timezone.now() - timedelta(days=200)
    prices = [Decimal(100) + Decimal(i % 17) * 3 - Decimal(i % 5) for i in range(200)]
    PricePoint.objects.bulk_create(
        [PricePoint(coin=coin, ts=start + timedelta(days=i), price=price) for i, price in enumerate(prices)]
    )
    owner = make_user("quant@example.com")
    strategy = Strategy.objects.create(
        owner=owner, name="Cross", kind="sma_crossover", params={"fast": 3, "slow": 8}, coin=coin
    )
    backtest = Backtest.objects.create(
        strategy=strategy,
        owner=owner,
        kind=strategy.kind,
        params=strategy.params,
        coin=coin,
        timeframe="1d",
        start=start,
        end=timezone.now(),
        initial_capital=Decimal(10_000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    result = app.send_task("strategies.tasks.run_backtest_task", args=[str(backtest.pk)], queue=queue)
    deadline = time.monotonic() + 60
    while Backtest.objects.get(pk=backtest.pk).status in {Backtest.Status.QUEUED, Backtest.Status.RUNNING}:
        assert time.monotonic() < deadline, "the worker did not finish the backtest within 60 s"
        time.sleep(0.25)
    backtest.refresh_from_db()
    log = stop_worker()
    assert backtest.status == Backtest.Status.SUCCEEDED, backtest.error
    assert (backtest.progress, backtest.bars) == (100, 200)
    assert backtest.metrics["trades"] == len(backtest.trades) > 0
    assert f"Task strategies.tasks.run_backtest_task[{result.id}] succeeded" in log
