"""Operations: paper runs isolated and exact, a per-user backtest cap, the reaper, deleting shared strategies,
domain errors from services, the drift report kept between reads."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from conftest import PASSWORD, make_user, needs_concurrent_db, run_concurrently
from cryptodesk.errors import DomainError
from market.models import Coin, PricePoint, Quote
from portfolios import services as portfolio_services
from portfolios.models import Order
from strategies import services
from strategies.engine import backtest as engine
from strategies.models import Backtest, PaperFill, PaperRun, Strategy

pytestmark = pytest.mark.django_db

DAY0 = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def add_bar(coin: Coin, day: int, price: str) -> None:
    PricePoint.objects.create(coin=coin, ts=DAY0 + timedelta(days=day, hours=12), price=Decimal(price))
    Quote.objects.update_or_create(
        coin=coin, defaults={"current_price": Decimal(price), "last_updated": timezone.now()}
    )


def make_coin(coin_id: str) -> Coin:
    coin = Coin.objects.create(id=coin_id, symbol=coin_id[:4], name=coin_id.title())
    for day, price in enumerate(["10", "9", "8", "7"], start=-4):
        add_bar(coin, day, price)
    return coin


def strategy_for(owner, coin, **changes) -> Strategy:
    fields = {"name": "Fast cross", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}, **changes}
    return Strategy.objects.create(owner=owner, coin=coin, timeframe="1d", **fields)


def paper_run(owner, coin, name: str) -> PaperRun:
    portfolio = portfolio_services.create_portfolio(owner=owner, name=name, starting_cash=Decimal("10000"))
    return services.start_paper_run(strategy=strategy_for(owner, coin), user=owner, portfolio=portfolio)


def backtest_for(strategy, owner, **changes) -> Backtest:
    now = timezone.now()
    fields = {
        "kind": strategy.kind,
        "params": strategy.params,
        "coin": strategy.coin,
        "timeframe": "1d",
        "start": now - timedelta(days=30),
        "end": now,
        "initial_capital": 10_000,
        "fee_bps": 10,
        "slippage_bps": 0,
        **changes,
    }
    return Backtest.objects.create(strategy=strategy, owner=owner, **fields)


# --- paper runs: isolated, errors on the run, exact ---------------------------------------------------


def test_one_failing_run_does_not_stop_the_others(alice, bob, monkeypatch, caplog):
    coin = make_coin("testcoin")
    broken, healthy = paper_run(alice, coin, "Alice's"), paper_run(bob, coin, "Bob's")
    place_order = portfolio_services.place_order

    def flaky(**kwargs):
        if kwargs["portfolio_id"] == broken.portfolio_id:
            raise ArithmeticError("quantity past the decimal context")
        return place_order(**kwargs)

    monkeypatch.setattr(portfolio_services, "place_order", flaky)
    add_bar(coin, 0, "12")  # both runs see a crossover on this bar
    with caplog.at_level(logging.WARNING, logger="strategies.services"):
        assert services.evaluate_paper_runs(coin_ids=["testcoin"]) == 1
        assert services.evaluate_paper_runs(coin_ids=["testcoin"]) == 0  # same bar again: still failing
    assert Order.objects.filter(portfolio=healthy.portfolio, side="buy", status="filled").count() == 1
    assert not Order.objects.filter(portfolio=broken.portfolio).exists()
    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert broken.last_error == "ArithmeticError: quantity past the decimal context"
    assert broken.last_error_at is not None
    assert broken.last_bar_ms is None  # the bar is tried again at the next sync
    assert healthy.last_error == ""
    assert [record.getMessage() for record in caplog.records if "paper run" in record.getMessage()] == [
        f"paper run {broken.pk} failed: ArithmeticError: quantity past the decimal context"
    ]
    monkeypatch.setattr(portfolio_services, "place_order", place_order)
    assert services.evaluate_paper_runs(coin_ids=["testcoin"]) == 1
    broken.refresh_from_db()
    assert (broken.last_error, broken.last_error_at) == ("", None)


def test_a_refused_order_is_recorded_on_the_run(alice):
    coin = make_coin("testcoin")
    run = paper_run(alice, coin, "Alice's")
    add_bar(coin, 0, "12")
    Quote.objects.filter(coin=coin).update(last_updated=timezone.now() - timedelta(days=2))  # stale: refused
    assert services.evaluate_paper_runs() == 0
    run.refresh_from_db()
    assert run.last_error.startswith("The buy order was refused: ")
    assert not Order.objects.exists()


HUGE_QUANTITY = Decimal("12345678901234567890.123456789012")  # 32 digits
HUGE_PRICE = Decimal("98765432109876543210.987654321098")


def huge_fill(run: PaperRun) -> None:
    order = Order.objects.create(
        portfolio=run.portfolio,
        coin=run.coin,
        side="buy",
        type="market",
        quantity=HUGE_QUANTITY,
        status="filled",
        filled_price=HUGE_PRICE,
        fee=Decimal("1234567890123456789.123456789012345678"),  # the largest a (38, 18) field holds, nearly
        filled_at=timezone.now(),
    )
    PaperFill.objects.create(run=run, order=order, bar_ms=int(DAY0.timestamp() * 1000))


def test_pages_and_api_read_a_run_with_30_digit_fills(client, alice, alice_api):
    coin = make_coin("testcoin")
    run = paper_run(alice, coin, "Alice's")
    huge_fill(run)
    Quote.objects.filter(coin=coin).update(current_price=HUGE_PRICE)
    body = alice_api.get(f"/api/v1/paper-runs/{run.pk}/")
    assert body.status_code == 200
    assert body.json()["drift"]["paper"]["fills"][0]["quantity"] == "12345678901234567890.123456789012"
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    assert client.get(f"/paper-runs/{run.pk}/").status_code == 200
    assert client.get("/paper-runs/").status_code == 200
    add_bar(coin, 0, "12")
    services.evaluate_paper_runs()  # the book of a huge fill is exact in the money context: no error
    run.refresh_from_db()
    assert run.last_error == ""


# --- a per-user cap on backtests -----------------------------------------------------------------------


def queue_nine_days(*, strategy, user) -> Backtest:
    """A nine-day backtest of 1,000 without costs, through the service."""
    return services.queue_backtest(
        strategy=strategy,
        user=user,
        initial_capital=Decimal(1000),
        fee_bps=Decimal(0),
        slippage_bps=Decimal(0),
        start=timezone.now() - timedelta(days=9),
        end=timezone.now(),
    )


def backtest_body() -> dict:
    end = timezone.now()
    return {"start": (end - timedelta(days=30)).isoformat(), "end": end.isoformat()}


def test_a_fourth_active_backtest_is_a_429(alice, alice_api, bob_api):
    strategy = strategy_for(alice, make_coin("testcoin"))
    assert settings.BACKTEST_MAX_ACTIVE_PER_USER == 3
    url = f"/api/v1/strategies/{strategy.pk}/backtests/"
    for _ in range(3):  # queued (no commit runs them here): each counts
        assert alice_api.post(url, backtest_body(), format="json").status_code == 202
    refused = alice_api.post(url, backtest_body(), format="json")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/too-many-backtests"
    assert "already have 3 backtests queued or running" in refused.json()["detail"]
    assert Backtest.objects.count() == 3
    Backtest.objects.filter(owner=alice).update(status=Backtest.Status.SUCCEEDED)
    assert alice_api.post(url, backtest_body(), format="json").status_code == 202


def test_the_cap_is_an_env_setting(settings, alice):
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 1
    strategy = strategy_for(alice, make_coin("testcoin"))
    queue_nine_days(strategy=strategy, user=alice)
    with pytest.raises(DomainError) as refused:
        queue_nine_days(strategy=strategy, user=alice)
    assert refused.value.status == 429


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_concurrent_queues_cannot_pass_the_cap(monkeypatch):
    monkeypatch.setattr(services, "enqueue_on_commit", lambda *args: None)  # they stay queued
    user = make_user("racer@example.com")
    strategy = strategy_for(user, make_coin("racecoin"))

    def attempt(_index: int) -> str:
        try:
            queue_nine_days(strategy=strategy, user=user)
        except DomainError as exc:
            return str(exc.status)
        return "queued"

    outcomes = run_concurrently(8, attempt)
    assert sorted(outcomes) == ["429"] * 5 + ["queued"] * 3
    assert Backtest.objects.filter(owner=user).count() == 3


# --- backtests on their own queue; the reaper ------------------------------------------------------------


def test_backtests_run_on_their_own_queue():
    from strategies.tasks import run_backtest_task

    assert settings.CELERY_TASK_ROUTES["strategies.tasks.run_backtest_task"] == {"queue": "backtests"}
    assert run_backtest_task.acks_late
    assert run_backtest_task.reject_on_worker_lost
    assert run_backtest_task.time_limit == services.BACKTEST_TIME_LIMIT_S
    beat = settings.CELERY_BEAT_SCHEDULE["reap-backtests"]
    assert beat["task"] == "strategies.tasks.reap_backtests_task"


def test_the_reaper_requeues_once_then_fails(alice, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue_on_commit", lambda task, backtest_id: sent.append((task.name, backtest_id)))
    strategy = strategy_for(alice, make_coin("testcoin"))
    now = timezone.now()
    late = now - timedelta(seconds=services.BACKTEST_TIME_LIMIT_S + services.BACKTEST_REAP_MARGIN_S + 1)
    lost = backtest_for(strategy, alice, status="running", started_at=late, attempts=1, progress=30)
    twice = backtest_for(strategy, alice, status="running", started_at=late, attempts=2)
    busy = backtest_for(strategy, alice, status="running", started_at=now - timedelta(seconds=60), attempts=1)
    queued = backtest_for(strategy, alice, status="queued")
    assert services.reap_backtests(now=now) == {"requeued": 1, "failed": 1}
    lost.refresh_from_db()
    twice.refresh_from_db()
    busy.refresh_from_db()
    queued.refresh_from_db()
    assert (lost.status, lost.progress, lost.started_at) == ("queued", 0, None)
    assert sent == [("strategies.tasks.run_backtest_task", str(lost.pk))]
    assert twice.status == "failed"
    assert "stopped 2 times before it finished" in twice.error
    assert (busy.status, queued.status) == ("running", "queued")


def test_a_claim_counts_the_attempt_and_beats(alice):
    strategy = strategy_for(alice, make_coin("testcoin"))
    backtest = backtest_for(strategy, alice, status="queued")
    services.run_backtest(backtest.pk)
    backtest.refresh_from_db()
    assert backtest.attempts == 1
    assert backtest.heartbeat_at is not None


# --- deleting a shared strategy ----------------------------------------------------------------------------


def test_deleting_a_published_strategy_keeps_other_users_runs(bob, bob_api):
    analyst = make_user("ana@example.com", role="analyst")
    coin = make_coin("testcoin")
    published = strategy_for(analyst, coin, visibility="published")
    own = backtest_for(published, analyst)
    theirs = backtest_for(published, bob)
    portfolio = portfolio_services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("100"))
    run = services.start_paper_run(strategy=published, user=bob, portfolio=portfolio)
    from conftest import api_for

    analyst_api = api_for(analyst)
    assert analyst_api.delete(f"/api/v1/strategies/{published.pk}/").status_code == 204
    published.refresh_from_db()
    assert published.archived_at is not None
    assert not Backtest.objects.filter(pk=own.pk).exists()  # the owner's own went with it
    assert bob_api.get(f"/api/v1/backtests/{theirs.pk}/").status_code == 200
    assert bob_api.get(f"/api/v1/paper-runs/{run.pk}/").status_code == 200
    assert bob_api.get(f"/api/v1/strategies/{published.pk}/").status_code == 404  # hidden
    assert published.pk not in {row["id"] for row in bob_api.get("/api/v1/strategies/").json()["results"]}
    assert (
        bob_api.post(f"/api/v1/strategies/{published.pk}/backtests/", backtest_body(), format="json").status_code == 404
    )
    assert bob_api.post(f"/api/v1/strategies/{published.pk}/clone/").status_code == 404
    assert analyst_api.get(f"/api/v1/strategies/{published.pk}/").status_code == 404
    with pytest.raises(DomainError):  # not runnable, even through the service
        queue_nine_days(strategy=published, user=bob)


def test_deleting_an_unshared_strategy_deletes_it(alice, alice_api, bob_api):
    strategy = strategy_for(alice, make_coin("testcoin"))
    backtest_for(strategy, alice)
    assert bob_api.delete(f"/api/v1/strategies/{strategy.pk}/").status_code == 404
    assert alice_api.delete(f"/api/v1/strategies/{strategy.pk}/").status_code == 204
    assert not Strategy.objects.exists()
    assert not Backtest.objects.exists()


def test_delete_button_on_the_page(client, alice, bob):
    coin = make_coin("testcoin")
    strategy = strategy_for(alice, coin, visibility="published")
    backtest_for(strategy, bob)
    assert client.post("/login/", {"email": bob.email, "password": PASSWORD}).status_code == 302
    assert client.post(f"/strategies/{strategy.pk}/delete/").status_code == 404
    client.post("/logout/")
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    assert 'data-testid="delete"' in client.get(f"/strategies/{strategy.pk}/").content.decode()
    response = client.post(f"/strategies/{strategy.pk}/delete/", follow=True)
    assert response.redirect_chain == [("/strategies/", 302)]
    assert "theirs are kept" in response.content.decode()
    assert Backtest.objects.filter(owner=bob).count() == 1
    assert client.get(f"/strategies/{strategy.pk}/").status_code == 404


# --- services speak domain errors; reads do not re-simulate --------------------------------------------


def test_services_raise_domain_errors_naming_the_field(alice):
    coin = make_coin("testcoin")
    with pytest.raises(DomainError) as bad:
        services.create_strategy(owner=alice, name="x", kind="sma_crossover", params={"fast": "¹²"}, coin=coin)
    assert (bad.value.status, bad.value.field) == (400, "params.fast")
    import inspect

    assert "rest_framework" not in inspect.getsource(services)


def test_reading_a_paper_run_twice_simulates_once(alice, alice_api, monkeypatch, django_assert_max_num_queries):
    coin = make_coin("testcoin")
    run = paper_run(alice, coin, "Alice's")
    PaperRun.objects.filter(pk=run.pk).update(started_at=DAY0 - timedelta(days=4))
    calls = []
    simulate = engine.run
    monkeypatch.setattr(engine, "run", lambda **kwargs: calls.append(1) or simulate(**kwargs))
    first = alice_api.get(f"/api/v1/paper-runs/{run.pk}/").json()
    assert len(calls) == 1
    assert first["drift"]["backtest"] is not None
    with django_assert_max_num_queries(12):
        second = alice_api.get(f"/api/v1/paper-runs/{run.pk}/").json()
    assert len(calls) == 1
    assert second["drift"]["backtest"] == first["drift"]["backtest"]
    add_bar(coin, 0, "12")  # a newer point: the backtest half is simulated again, once
    alice_api.get(f"/api/v1/paper-runs/{run.pk}/")
    alice_api.get(f"/api/v1/paper-runs/{run.pk}/")
    assert len(calls) == 2
