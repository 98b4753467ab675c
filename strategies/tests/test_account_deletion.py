"""Deleting an account keeps other users' runs of its strategies: those are archived under no owner."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts import services as account_services
from accounts.models import User
from conftest import PASSWORD, api_for, make_user
from market.models import Coin, PricePoint, Quote
from portfolios import services as portfolio_services
from strategies import services
from strategies.models import Backtest, Optimization, PaperRun, Strategy

pytestmark = pytest.mark.django_db

DAY0 = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


@pytest.fixture
def coin(db) -> Coin:
    coin = Coin.objects.create(id="testcoin", symbol="tst", name="Test coin")
    for day, price in enumerate(["10", "9", "8", "7", "12", "5", "3"], start=-4):
        PricePoint.objects.create(coin=coin, ts=DAY0 + timedelta(days=day, hours=12), price=Decimal(price))
    Quote.objects.create(coin=coin, current_price=Decimal("3"), last_updated=timezone.now())
    return coin


def strategy_for(owner, coin, **changes) -> Strategy:
    fields = {"name": "Fast cross", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}, **changes}
    return Strategy.objects.create(owner=owner, coin=coin, timeframe="1d", **fields)


def backtest_of(strategy, user) -> Backtest:
    backtest = services.queue_backtest(
        strategy=strategy,
        user=user,
        start=DAY0 - timedelta(days=5),
        end=DAY0 + timedelta(days=3),
        initial_capital=Decimal(1000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    return services.run_backtest(backtest.pk)


@pytest.fixture
def shared(bob, coin):
    """An analyst's published strategy, backtested by the analyst and by bob, traded on paper by bob."""
    analyst = make_user("ana@example.com", role="analyst")
    published = strategy_for(analyst, coin, visibility="published")
    own = backtest_of(published, analyst)
    theirs = backtest_of(published, bob)
    assert theirs.status == "succeeded"
    portfolio = portfolio_services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("100"))
    run = services.start_paper_run(strategy=published, user=bob, portfolio=portfolio)
    return analyst, published, own, theirs, run


def test_deleting_the_account_keeps_other_users_backtests_and_paper_runs(bob_api, shared):
    analyst, published, own, theirs, run = shared
    before = bob_api.get(f"/api/v1/backtests/{theirs.pk}/").json()
    assert api_for(analyst).delete("/api/v1/me/").status_code == 204
    assert not User.objects.filter(pk=analyst.pk).exists()
    after = bob_api.get(f"/api/v1/backtests/{theirs.pk}/")
    assert after.status_code == 200
    assert after.json() == before
    assert after.json()["metrics"]["trades"] == 1
    assert bob_api.get(f"/api/v1/paper-runs/{run.pk}/").status_code == 200
    assert PaperRun.objects.get(pk=run.pk).strategy_id == published.pk
    kept = Strategy.objects.get(pk=published.pk)
    assert (kept.owner_id, kept.visibility) == (None, "private")
    assert kept.archived_at is not None
    assert not Backtest.objects.filter(pk=own.pk).exists()  # the analyst's own went with the account
    assert bob_api.get(f"/api/v1/strategies/{published.pk}/").status_code == 404
    assert published.pk not in {row["id"] for row in bob_api.get("/api/v1/strategies/").json()["results"]}
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "initial_capital": "1000"}
    assert bob_api.post(f"/api/v1/strategies/{published.pk}/backtests/", body, format="json").status_code == 404


def test_the_pages_of_kept_runs_still_answer(client, bob, shared):
    analyst, published, _, theirs, run = shared
    account_services.delete_account(user=analyst)
    assert client.post("/login/", {"email": bob.email, "password": PASSWORD}).status_code == 302
    page = client.get(f"/backtests/{theirs.pk}/")
    assert page.status_code == 200
    assert published.name in page.content.decode()
    assert client.get(f"/paper-runs/{run.pk}/").status_code == 200
    assert client.get("/paper-runs/").status_code == 200
    assert client.get("/strategies/").status_code == 200


def test_a_clone_by_another_user_keeps_the_original_archived(alice, coin):
    analyst = make_user("ana@example.com", role="analyst")
    published = strategy_for(analyst, coin, visibility="published")
    copy = services.clone_strategy(strategy=published, user=alice)
    account_services.delete_account(user=analyst)
    copy.refresh_from_db()
    assert copy.cloned_from_id == published.pk
    assert Strategy.objects.get(pk=published.pk).owner_id is None


def test_strategies_nobody_else_used_go_with_the_account(alice, bob, coin):
    lonely = strategy_for(alice, coin)
    backtest_of(lonely, alice)
    published_unused = strategy_for(alice, coin, name="Nobody ran it", visibility="published")
    used = strategy_for(alice, coin, name="Bob ran it", visibility="published")
    backtest_of(used, bob)
    bobs = strategy_for(bob, coin, name="Bob's own")
    account_services.delete_account(user=alice)
    assert set(Strategy.objects.values_list("pk", flat=True)) == {used.pk, bobs.pk}
    assert not Strategy.objects.filter(pk__in=[lonely.pk, published_unused.pk]).exists()
    assert Backtest.objects.filter(owner=bob).count() == 1
    assert Strategy.objects.get(pk=bobs.pk).owner_id == bob.pk


def test_operators_bulk_delete_keeps_other_users_runs_too(bob, shared):
    analyst, published, _, theirs, run = shared
    assert account_services.delete_users(users=User.objects.filter(pk=analyst.pk)) == 1
    assert Backtest.objects.filter(pk=theirs.pk).exists()
    assert PaperRun.objects.filter(pk=run.pk).exists()
    assert Strategy.objects.get(pk=published.pk).archived_at is not None


def test_deleting_both_accounts_leaves_nothing_behind(bob, shared):
    analyst, *_ = shared
    account_services.delete_users(users=User.objects.filter(pk__in=[analyst.pk, bob.pk]))
    assert not Backtest.objects.exists()
    assert not PaperRun.objects.exists()


def _optimization_of(strategy, user) -> Optimization:
    return Optimization.objects.create(
        strategy=strategy,
        owner=user,
        kind=strategy.kind,
        params=strategy.params,
        grid={"fast": [2], "slow": [3]},
        objective="sharpe",
        coin=strategy.coin,
        timeframe="1d",
        start=DAY0 - timedelta(days=5),
        end=DAY0 + timedelta(days=3),
        initial_capital=Decimal(1000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )


@pytest.mark.parametrize("how", ["account", "strategy"])
def test_another_users_optimisation_keeps_the_strategy_archived(bob, coin, how):
    analyst = make_user("ana@example.com", role="analyst")
    published = strategy_for(analyst, coin, visibility="published")
    own, theirs = _optimization_of(published, analyst), _optimization_of(published, bob)
    if how == "account":
        account_services.delete_account(user=analyst)
    else:
        assert services.delete_strategy(strategy=published, user=analyst) is False
    assert Optimization.objects.filter(pk=theirs.pk).exists()
    assert not Optimization.objects.filter(pk=own.pk).exists()
    assert Strategy.objects.get(pk=published.pk).archived_at is not None
