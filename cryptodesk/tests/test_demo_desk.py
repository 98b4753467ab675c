"""The demo desk from `make run` alone: the beat schedule inside the server, a ticking market, triggers in reach."""

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from celery import Celery
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.services import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_user
from conftest import PASSWORD
from cryptodesk import scheduler
from market import services as market_services
from market.models import Coin, Quote, SyncRun
from portfolios.models import Alert, Notification, Order
from portfolios.services import OrderRefused, create_portfolio, place_order
from strategies.models import PaperRun, Strategy

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)  # half a minute before 12:01, four and a half before 12:05
STALE_FILLS = "Market orders still fill at this last price."
STALE_REFUSED = "Market orders are refused until prices update; limit orders can still be placed."


# --- the scheduler -------------------------------------------------------------------------------------


def _jobs_app(calls: list[str]) -> Celery:
    """A Celery app of its own: the scheduler under test runs these tasks, not the product's."""
    app = Celery("scheduler-test", set_as_current=False)
    app.conf.update(task_always_eager=True, timezone="UTC", enable_utc=True)

    @app.task(name="test.every_minute", shared=False)
    def every_minute() -> None:
        calls.append("every_minute")

    @app.task(name="test.every_five", shared=False)
    def every_five(*, label: str) -> None:
        calls.append(f"every_five:{label}")

    @app.task(name="test.broken", shared=False)
    def broken() -> None:
        raise RuntimeError("the job broke")

    return app


ENTRIES = {
    "broken": {"task": "test.broken", "schedule": crontab()},
    "every-minute": {"task": "test.every_minute", "schedule": crontab(), "options": {"expires": 50}},
    "every-five": {"task": "test.every_five", "schedule": crontab(minute="*/5"), "kwargs": {"label": "five"}},
}


def test_each_job_runs_on_its_own_schedule_and_a_failing_one_stops_no_other(caplog):
    calls: list[str] = []
    jobs = scheduler.Scheduler(ENTRIES, now=T0, app=_jobs_app(calls))

    assert jobs.run_due(T0 + timedelta(seconds=20)) == []
    assert jobs.seconds_until_next(T0 + timedelta(seconds=20)) == 10
    assert jobs.run_due(T0 + timedelta(seconds=30)) == ["broken", "every-minute"]  # 12:01:00
    assert calls == ["every_minute"]
    assert "scheduled job broken failed" in caplog.text
    assert "RuntimeError: the job broke" in caplog.text
    assert jobs.run_due(T0 + timedelta(seconds=45)) == []  # each ran once in this minute
    assert jobs.run_due(T0 + timedelta(minutes=4, seconds=30)) == ["broken", "every-minute", "every-five"]  # 12:05
    assert calls == ["every_minute", "every_minute", "every_five:five"]


def test_jobs_named_to_run_at_start_run_on_the_first_pass_then_on_their_schedule():
    calls: list[str] = []
    jobs = scheduler.Scheduler(ENTRIES, now=T0, app=_jobs_app(calls), run_at_start={"test.every_five"})
    assert jobs.run_due(T0) == ["every-five"]
    assert jobs.run_due(T0 + timedelta(seconds=1)) == []
    assert jobs.run_due(T0 + timedelta(minutes=4, seconds=30)) == ["broken", "every-minute", "every-five"]
    assert calls == ["every_five:five", "every_minute", "every_five:five"]


def test_an_entry_in_seconds_runs_that_many_seconds_after_its_last_run():
    calls: list[str] = []
    jobs = scheduler.Scheduler({"ping": {"task": "test.every_minute", "schedule": 40.0}}, now=T0, app=_jobs_app(calls))
    assert jobs.run_due(T0 + timedelta(seconds=39)) == []
    assert jobs.run_due(T0 + timedelta(seconds=40)) == ["ping"]
    assert jobs.seconds_until_next(T0 + timedelta(seconds=50)) == 30
    assert calls == ["every_minute"]


def test_the_loop_runs_the_due_jobs_until_it_is_stopped():
    calls: list[str] = []
    jobs = scheduler.Scheduler(ENTRIES, now=timezone.now(), app=_jobs_app(calls), run_at_start={"test.every_five"})
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.serve, args=(jobs, stop))
    thread.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert calls[:1] == ["every_five:five"]


def test_the_schedule_runs_in_the_server_only_when_there_is_no_broker(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.RUN_SCHEDULE_IN_PROCESS = True
    assert scheduler.runs_in_process()
    settings.RUN_SCHEDULE_IN_PROCESS = False
    assert not scheduler.runs_in_process()
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker: beat runs the schedule, never the web process
    settings.RUN_SCHEDULE_IN_PROCESS = True
    assert not scheduler.runs_in_process()


# --- the seeded demo ----------------------------------------------------------------------------------


@pytest.fixture
def demo(settings):
    settings.DEMO_TICKER = True
    call_command("seed_demo", stdout=StringIO())
    return ensure_demo_user()


def test_the_seeded_demo_has_alerts_limit_orders_and_a_paper_run_within_reach_once(demo):
    price = Quote.objects.get(coin_id="bitcoin").current_price
    near = price * Decimal("0.01")  # a few minutes of demo ticks
    alerts = dict(Alert.objects.filter(owner=demo, coin_id="bitcoin").values_list("condition", "threshold"))
    assert set(alerts) == {"price_above", "price_below"}
    assert price < alerts["price_above"] <= price + near
    assert price - near <= alerts["price_below"] < price
    limits = dict(
        Order.objects.filter(portfolio__owner=demo, type="limit", status="open").values_list("side", "limit_price")
    )
    assert set(limits) == {"buy", "sell"}
    assert price - near <= limits["buy"] < price < limits["sell"] <= price + near
    run = PaperRun.objects.get(owner=demo)
    assert (run.status, run.kind, run.timeframe, run.coin_id) == ("active", "dca", "1h", "ethereum")

    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert Alert.objects.filter(owner=demo).count() == 2
    assert Order.objects.filter(portfolio__owner=demo, type="limit").count() == 2
    assert PaperRun.objects.filter(owner=demo).count() == 1
    assert Strategy.objects.filter(owner=demo).count() == 2
    assert "Demo paper run" not in out.getvalue()


def test_the_demo_ticker_moves_a_price_and_fires_an_alert_within_the_test(demo, django_capture_on_commit_callbacks):
    before = Quote.objects.get(coin_id="bitcoin").current_price
    # The seeded alerts sit 0.5 % away, a few minutes of ticks; one tick must do here, so they close in on the price.
    Alert.objects.filter(owner=demo, coin_id="bitcoin").update(threshold=before)
    portfolio_id = Order.objects.filter(portfolio__owner=demo).values_list("portfolio", flat=True).first()
    step = Decimal("0.00000001")
    for side, limit in (("buy", before - step), ("sell", before + step)):
        place_order(
            user=demo,
            portfolio_id=portfolio_id,
            coin_id="bitcoin",
            side=side,
            type="limit",
            quantity=Decimal("0.01"),
            limit_price=limit,
        )
    jobs = scheduler.Scheduler(django_settings.CELERY_BEAT_SCHEDULE, now=T0)

    with django_capture_on_commit_callbacks(execute=True):
        ran = jobs.run_due(T0 + timedelta(seconds=30))  # 12:01: the every-minute jobs only

    assert ran == ["demo-ticker", "relay-outbox"]
    quote = Quote.objects.get(coin_id="bitcoin")
    assert quote.current_price != before
    assert timezone.now() - quote.last_updated < timedelta(seconds=10)  # fresh: no stale banner in the demo
    rose = quote.current_price > before
    fired = Alert.objects.get(owner=demo, coin_id="bitcoin", is_met=True)
    assert fired.condition == ("price_above" if rose else "price_below")
    assert Alert.objects.filter(owner=demo, is_met=True).count() == 1
    note = Notification.objects.get(user=demo, kind="alert", read_at__isnull=True)
    assert note.title == f"Bitcoin: {fired.get_condition_display().lower()} {before.normalize():f}"
    filled = Order.objects.get(portfolio__owner=demo, type="limit", quantity=Decimal("0.01"), status="filled")
    assert filled.side == ("sell" if rose else "buy")

    bell = Client()
    assert bell.post("/login/", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}).status_code == 302
    assert 'data-testid="unread-count">1<' in bell.get("/dashboard/").content.decode()


def test_the_demo_paper_run_buys_on_the_first_hourly_bar_after_it_started(demo, django_capture_on_commit_callbacks):
    run = PaperRun.objects.get(owner=demo)
    next_bar = run.started_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    with django_capture_on_commit_callbacks(execute=True):
        market_services.demo_tick(now=next_bar + timedelta(seconds=5))

    fill = run.fills.select_related("order").get()
    order = fill.order
    assert (order.side, order.type, order.status) == ("buy", "market", "filled")
    assert order.filled_price == Quote.objects.get(coin_id="ethereum").current_price
    assert Decimal(240) < order.quantity * order.filled_price <= Decimal(250)  # the daily 250 USD, less the fee


def test_ticks_keep_the_seven_day_sparkline_one_point_every_four_hours():
    slot = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a 4-hour slot starts at noon UTC
    coin = Coin.objects.create(id="democoin", symbol="dmo", name="Democoin", source="demo")
    week = [str(n) for n in range(1, 43)]
    Quote.objects.create(
        coin=coin, current_price=Decimal(42), last_updated=slot, sparkline_7d=week, source="demo", market_cap=None
    )

    market_services.demo_tick(now=slot + timedelta(minutes=1))
    market_services.demo_tick(now=slot + timedelta(minutes=2))
    within = Quote.objects.get(coin=coin)
    assert within.sparkline_7d[:-1] == week[:-1]  # the newest point follows the price; the week stays a week
    assert within.sparkline_7d[-1] == str(within.current_price.normalize())  # read back with every digit, SQLite too

    market_services.demo_tick(now=slot + timedelta(hours=4))
    next_slot = Quote.objects.get(coin=coin)
    assert next_slot.sparkline_7d[:-1] == [*week[1:-1], within.sparkline_7d[-1]]
    assert len(next_slot.sparkline_7d) == 42


# --- what the pages say ---------------------------------------------------------------------------------


def test_the_login_page_shows_the_demo_login_only_in_the_demo(client, settings):
    settings.DEBUG = True
    assert DEMO_PASSWORD not in client.get("/login/").content.decode()  # no demo account here
    ensure_demo_user()
    html = client.get("/login/").content.decode()
    assert f"<code>{DEMO_EMAIL}</code>" in html
    assert f"<code>{DEMO_PASSWORD}</code>" in html
    settings.DEBUG = False  # production never advertises a login
    assert DEMO_PASSWORD not in client.get("/login/").content.decode()


@pytest.mark.parametrize("allowed", [True, False], ids=["stale-prices-allowed", "stale-prices-refused"])
def test_the_stale_banner_says_what_a_market_order_on_a_stale_price_does(alice, settings, allowed):
    settings.PAPER_ALLOW_STALE_PRICES = allowed
    an_hour_ago = timezone.now() - timedelta(hours=1)
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=coin, current_price=Decimal(100), last_updated=an_hour_ago, sparkline_7d=["100"])
    SyncRun.objects.create(
        kind=SyncRun.Kind.MARKETS, status=SyncRun.Status.SUCCEEDED, started_at=an_hour_ago, finished_at=an_hour_ago
    )
    portfolio = create_portfolio(owner=alice, name="Main", starting_cash=Decimal(1000))
    try:
        order, _ = place_order(
            user=alice, portfolio_id=portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=Decimal(1)
        )
    except OrderRefused:
        order = None
    assert (order is not None and order.status == "filled") is allowed

    said, unsaid = (STALE_FILLS, STALE_REFUSED) if allowed else (STALE_REFUSED, STALE_FILLS)
    browser = Client()
    assert browser.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    for url in ("/dashboard/", "/markets/", "/markets/bitcoin/"):
        html = browser.get(url).content.decode()
        assert said in html, url
        assert unsaid not in html, url


# --- the output of `make run` ---------------------------------------------------------------------------


def _without_our_environment() -> dict[str, str]:
    ours = ("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "SECRET", "DEBUG", "DEMO_", "COINGECKO_", "RUN_SCHEDULE")
    return {name: value for name, value in os.environ.items() if not name.startswith(ours)}


def test_tasks_run_in_process_without_a_broker_warning():
    """No broker at all: tasks run eagerly and nothing pretends to look for one on localhost."""
    env = {**_without_our_environment(), "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "cryptodesk.settings"}
    code = (
        "import django; django.setup()\n"
        "from market.tasks import demo_tick_task\n"
        "demo_tick_task.apply_async()\n"
        "print('ran')\n"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"
    assert "hostname" not in result.stderr.lower(), result.stderr


def _demo_ticker_setting(**env: str) -> str:
    env = {**_without_our_environment(), "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "cryptodesk.settings", **env}
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEMO_TICKER)"
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_demo_ticker_is_on_in_the_demo_and_off_in_production_unless_asked():
    assert _demo_ticker_setting(DEBUG="1") == "True"
    assert _demo_ticker_setting(DEBUG="0") == "False"
    assert _demo_ticker_setting(DEBUG="0", DEMO_TICKER="1") == "True"
    assert django_settings.DEMO_TICKER is False  # and off in the tests


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="the server process shares the test database: needs PostgreSQL (set DATABASE_URL)",
)
def test_runserver_runs_the_schedule_and_prints_the_demo_login_last_once_it_answers():
    ensure_demo_user()
    port = _free_port()
    env = {
        **_without_our_environment(),
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DEBUG": "1",
        "DATABASE_URL": _database_url(),
        "COINGECKO_BASE_URL": "http://127.0.0.1:9/api/v3",  # nothing listens there: no job leaves the machine
        "PYTHONUNBUFFERED": "1",
    }
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py, with the autoreloader as make run
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: the reloader's child goes with it
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in server.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any("answers on" in line for line in seen):
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
        time.sleep(1)  # anything printed right after the announcement would show up now
        while not lines.empty():
            seen.append(lines.get())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    output = "\n".join(seen)
    url = f"http://127.0.0.1:{port}/"
    announced = [index for index, line in enumerate(seen) if "answers on" in line]
    assert announced, output
    assert seen[announced[0]] == f"CryptoDesk answers on {url} — demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}"
    # printed last: only a scheduled job's own log line may follow (one could fall due in that second)
    assert [line for line in seen[announced[0] + 1 :] if "scheduled job" not in line] == [], output
    assert output.count("answers on") == 1
    assert output.index("Quit the server with") < output.index("GET /health") < output.index("answers on")
    assert output.count("Scheduled jobs run inside this server") == 1, output  # in the serving child only
    assert "hostname" not in output.lower()
