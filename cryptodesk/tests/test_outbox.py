"""The task outbox: a broker that refuses a message after commit never turns the write into a 500."""

import logging
import threading
import time
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from conftest import PASSWORD, api_for, make_user, needs_concurrent_db, run_concurrently
from cryptodesk import outbox
from cryptodesk.celery import app as celery_app
from cryptodesk.models import OutboxMessage
from cryptodesk.tasks import relay_outbox_task
from market import hooks
from market.models import Coin
from portfolios import services as portfolio_services
from portfolios.models import CashTransfer, Portfolio, PortfolioSnapshot
from portfolios.tasks import take_snapshot_task
from strategies.models import Backtest

PUBLISH = "kombu.messaging.Producer.publish"
SNAPSHOT = "portfolios.tasks.take_snapshot_task"


class Broker:
    """Stands in for the producer: records what is published, or refuses while `down`."""

    def __init__(self, *, down: BaseException | None = None, delay: float = 0.0):
        self.down = down
        self.delay = delay
        self.sent: list[tuple[str, list, dict]] = []
        self._lock = threading.Lock()

    def publish(self, body, *args, headers=None, **kwargs):
        if self.down is not None:
            raise self.down
        time.sleep(self.delay)
        task_args, task_kwargs, _embed = body
        with self._lock:
            self.sent.append((headers["task"], list(task_args), task_kwargs))

    def names(self) -> list[str]:
        return [name for name, _args, _kwargs in self.sent]


@pytest.fixture
def broker(settings):
    """A real (non-eager) Celery publish path with the producer replaced."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    stand_in = Broker()
    with mock.patch(PUBLISH, autospec=True, side_effect=lambda _producer, *a, **kw: stand_in.publish(*a, **kw)):
        yield stand_in


@pytest.fixture(autouse=True)
def _fresh_outage_state(monkeypatch):
    monkeypatch.setattr(outbox, "_broker_down", False)


@pytest.fixture
def portfolio(alice):
    return Portfolio.objects.create(owner=alice, name="Main", starting_cash=Decimal("1000"), cash=Decimal("1000"))


# --- the request still answers its success ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deposit_with_the_broker_down_succeeds_and_the_task_waits_in_the_outbox(broker, alice_api, portfolio):
    broker.down = OperationalError("Error 111 connecting to localhost:6379. Connection refused.")

    response = alice_api.post(
        f"/api/v1/portfolios/{portfolio.pk}/transfers/", {"kind": "deposit", "amount": "250"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert CashTransfer.objects.filter(portfolio=portfolio).count() == 1
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args, message.kwargs) == (SNAPSHOT, [portfolio.pk], {})
    assert message.attempts == 0
    assert message.next_attempt_at <= timezone.now()


@pytest.mark.django_db(transaction=True)
def test_creating_a_portfolio_with_the_broker_down_succeeds(broker, alice_api):
    broker.down = RedisConnectionError("Connection refused")

    response = alice_api.post("/api/v1/portfolios/", {"name": "Side", "starting_cash": "100"}, format="json")

    assert response.status_code == 201, response.content
    assert list(OutboxMessage.objects.values_list("task_name", "args")) == [(SNAPSHOT, [response.json()["id"]])]


@pytest.mark.django_db(transaction=True)
def test_queuing_a_backtest_with_the_broker_down_answers_202(broker):
    Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin")
    client = api_for(make_user("carol@example.com"))
    strategy = client.post(
        "/api/v1/strategies/",
        {"name": "Cross", "kind": "sma_crossover", "params": {"fast": 10, "slow": 30}, "coin": "bitcoin"},
        format="json",
    ).json()
    broker.down = OSError(111, "Connection refused")

    response = client.post(
        f"/api/v1/strategies/{strategy['id']}/backtests/",
        {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert Backtest.objects.get().status == Backtest.Status.QUEUED
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args) == ("strategies.tasks.run_backtest_task", [response.json()["id"]])


@pytest.mark.django_db(transaction=True)
def test_requesting_a_market_sync_with_the_broker_down_keeps_the_task_id(broker):
    admin = api_for(make_user("ops@example.com", role="admin"))
    broker.down = OperationalError("Connection refused")

    response = admin.post("/api/v1/market/sync/", {}, format="json")

    assert response.status_code == 202, response.content
    message = OutboxMessage.objects.get()
    assert message.task_name == "market.tasks.sync_markets_task"
    assert message.task_id == response.json()["task_id"]
    assert message.kwargs["sync_run_id"] == response.json()["sync_run"]["id"]


@pytest.mark.django_db(transaction=True)
def test_a_working_broker_gets_the_message_and_the_outbox_stays_empty(broker, alice_api, portfolio):
    response = alice_api.post(
        f"/api/v1/portfolios/{portfolio.pk}/transfers/", {"kind": "deposit", "amount": "5"}, format="json"
    )

    assert response.status_code == 201
    assert broker.sent == [(SNAPSHOT, [portfolio.pk], {})]
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_nothing_is_published_when_the_transaction_rolls_back(broker, portfolio):
    def write_then_fail() -> None:
        with transaction.atomic():
            outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        write_then_fail()

    assert broker.sent == []
    assert not OutboxMessage.objects.exists()


def test_one_warning_per_outage_without_a_traceback(broker, portfolio, caplog, django_capture_on_commit_callbacks):
    broker.down = OperationalError("Connection refused")
    caplog.set_level(logging.DEBUG, logger="cryptodesk.outbox")

    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)

    warnings = [r for r in caplog.records if r.name == "cryptodesk.outbox" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None
    assert "Connection refused" in warnings[0].getMessage()
    assert OutboxMessage.objects.count() == 3


def test_price_hooks_keep_their_tasks_when_the_broker_is_down(broker, db, caplog):
    broker.down = OperationalError("Connection refused")

    hooks.publish(hooks.PricesUpdated(coin_ids=("bitcoin",), as_of=timezone.now(), source="coingecko"))

    assert sorted(OutboxMessage.objects.values_list("task_name", "args")) == [
        ("cryptodesk.realtime.tasks.publish_portfolio_values_task", [["bitcoin"]]),
        ("portfolios.tasks.evaluate_alerts_task", [["bitcoin"]]),
        ("portfolios.tasks.fill_limit_orders_task", [["bitcoin"]]),
        ("strategies.tasks.evaluate_paper_runs_task", [["bitcoin"]]),
    ]
    assert not [record for record in caplog.records if record.exc_info]


def test_enqueue_now_publishes_at_once(broker, portfolio):
    outbox.enqueue_now(take_snapshot_task, portfolio.pk)

    assert broker.sent == [(SNAPSHOT, [portfolio.pk], {})]


def test_arguments_must_be_json(portfolio):
    with pytest.raises(TypeError, match="must be JSON"):
        outbox.enqueue_on_commit(take_snapshot_task, Decimal("1"))
    with pytest.raises(TypeError, match="must be JSON"):
        outbox.enqueue_on_commit(take_snapshot_task, portfolio_id=portfolio)


# --- eager mode (no broker, and tests) ----------------------------------------------------------------


def test_eager_mode_runs_the_task_in_process(portfolio, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)

    assert PortfolioSnapshot.objects.filter(portfolio=portfolio).exists()
    assert not OutboxMessage.objects.exists()


def test_eager_mode_task_errors_propagate_and_are_not_outboxed(portfolio, django_capture_on_commit_callbacks):
    with (
        mock.patch.object(portfolio_services, "take_snapshot", side_effect=OSError("disk full")),
        pytest.raises(OSError, match="disk full"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)

    assert not OutboxMessage.objects.exists()


def test_robust_dispatch_logs_an_eager_task_error_instead_of_raising(
    portfolio, caplog, django_capture_on_commit_callbacks
):
    with (
        mock.patch.object(portfolio_services, "take_snapshot", side_effect=OSError("disk full")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        outbox.apply_async_on_commit(take_snapshot_task, args=[portfolio.pk], robust=True)

    assert any("disk full" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)
    assert not OutboxMessage.objects.exists()


# --- the relay -------------------------------------------------------------------------------------


def _stored(count: int, **fields) -> list[OutboxMessage]:
    return [OutboxMessage.objects.create(task_name=SNAPSHOT, args=[index], **fields) for index in range(count)]


def test_relay_publishes_in_order_and_deletes_each(broker, db):
    _stored(3)
    OutboxMessage.objects.create(
        task_name="market.tasks.sync_markets_task", kwargs={"sync_run_id": 7}, task_id="fixed-id"
    )

    assert outbox.relay_outbox() == 4

    assert broker.sent == [
        (SNAPSHOT, [0], {}),
        (SNAPSHOT, [1], {}),
        (SNAPSHOT, [2], {}),
        ("market.tasks.sync_markets_task", [], {"sync_run_id": 7}),
    ]
    assert not OutboxMessage.objects.exists()


def test_relay_republishes_with_the_stored_task_id(broker, db):
    OutboxMessage.objects.create(task_name="market.tasks.sync_markets_task", task_id="fixed-id")

    with mock.patch.object(celery_app.amqp, "send_task_message") as send:
        outbox.relay_outbox()

    _producer, name, message = send.call_args.args
    assert (name, message.headers["id"]) == ("market.tasks.sync_markets_task", "fixed-id")


def test_relay_task_runs_the_relay(broker, db):
    _stored(2)

    relay_outbox_task.apply()

    assert broker.names() == [SNAPSHOT, SNAPSHOT]
    assert not OutboxMessage.objects.exists()


def test_a_failing_relay_counts_the_attempt_and_backs_off(broker, db):
    first, second = _stored(2)
    broker.down = OperationalError("Connection refused")
    now = timezone.now()

    assert outbox.relay_outbox(now=now) == 0

    first.refresh_from_db()
    assert first.attempts == 1
    assert first.last_error == "OperationalError: Connection refused"
    assert first.next_attempt_at == now + outbox.backoff(1)
    second.refresh_from_db()
    assert second.attempts == 0  # the relay stopped at the first refusal

    broker.down = None
    assert outbox.relay_outbox(now=now + timedelta(seconds=1)) == 1  # the first is not due yet
    assert broker.sent == [(SNAPSHOT, [1], {})]
    assert outbox.relay_outbox(now=now + outbox.backoff(1)) == 1
    assert not OutboxMessage.objects.exists()


def test_backoff_doubles_up_to_an_hour():
    waits = [outbox.backoff(attempts) for attempts in range(1, 12)]
    assert waits[:4] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120), timedelta(seconds=240)]
    assert waits == sorted(waits)
    assert waits[-1] == timedelta(hours=1)


def test_a_message_the_relay_cannot_encode_does_not_block_the_rest(broker, db):
    bad, _good = _stored(2)
    real = broker.publish

    def publish(body, *args, **kwargs):
        if body[0] == [0]:
            raise ValueError("cannot encode")
        return real(body, *args, **kwargs)

    broker.publish = publish

    assert outbox.relay_outbox() == 1

    assert broker.sent == [(SNAPSHOT, [1], {})]
    bad.refresh_from_db()
    assert (bad.attempts, bad.last_error) == (1, "ValueError: cannot encode")


def test_the_next_successful_publish_wakes_the_relay(broker, portfolio, django_capture_on_commit_callbacks):
    _stored(1)
    outbox._broker_down = True  # this process saw the outage (the fixture restores the flag)

    with django_capture_on_commit_callbacks(execute=True):
        outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)

    assert broker.names() == [SNAPSHOT, "cryptodesk.tasks.relay_outbox_task"]


def test_no_relay_wake_up_when_nothing_is_due(broker, portfolio, django_capture_on_commit_callbacks):
    _stored(1, next_attempt_at=timezone.now() + timedelta(minutes=5))
    outbox._broker_down = True

    with django_capture_on_commit_callbacks(execute=True):
        outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)

    assert broker.names() == [SNAPSHOT]


def test_a_publish_with_no_outage_behind_it_costs_no_query(
    broker, portfolio, django_capture_on_commit_callbacks, django_assert_num_queries
):
    _stored(1)  # another process's message: beat's relay sends it, this publish does not look

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outbox.enqueue_on_commit(take_snapshot_task, portfolio.pk)
    with django_assert_num_queries(0):
        for callback in callbacks:
            callback()

    assert broker.names() == [SNAPSHOT]


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_send_each_message_once(broker):
    _stored(30)
    broker.delay = 0.01

    sent = run_concurrently(2, lambda _index: outbox.relay_outbox())

    assert sum(sent) == 30
    assert sorted(args[0] for _name, args, _kwargs in broker.sent) == list(range(30))
    assert not OutboxMessage.objects.exists()


def test_relay_is_scheduled_every_minute(settings):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "cryptodesk.tasks.relay_outbox_task")
    assert entry["schedule"].minute == set(range(60))


# --- operators -----------------------------------------------------------------------------------------


def test_admin_lists_pending_messages(client, db):
    _stored(1)
    make_user("root@example.com", role="admin")
    client.post("/login/", {"email": "root@example.com", "password": PASSWORD})

    response = client.get("/admin/cryptodesk/outboxmessage/")

    assert response.status_code == 200
    assert SNAPSHOT in response.content.decode()
    assert client.get("/admin/cryptodesk/outboxmessage/add/").status_code == 403
