"""Strategy and backtest pages: owner scoping, the form from the kind declarations, backtests end to end."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import PASSWORD, make_user
from market.demo.snapshot import load_snapshot
from market.models import Coin, PricePoint, Quote
from portfolios import services as portfolio_services
from strategies import services
from strategies.models import Backtest, PaperRun, Strategy

pytestmark = pytest.mark.django_db


def field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{re.escape(name)}">([^<]+)<', response.content.decode())


def log_in(client, user) -> None:
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content


@pytest.fixture
def coin(db) -> Coin:
    """One coin with a quote: enough for the forms (backtests that need history load the demo snapshot)."""
    bitcoin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=bitcoin, current_price="50000", last_updated=timezone.now())
    return bitcoin


@pytest.fixture
def market(db):
    load_snapshot()


@pytest.fixture
def alice_client(client, alice):
    log_in(client, alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    log_in(client, bob)
    return client


@pytest.fixture
def analyst(db):
    return make_user("ana@example.com", display_name="Ana", role="analyst", email_verified=True)


def strategy_for(owner, coin, **changes) -> Strategy:
    fields = {"name": "Golden cross", "kind": "sma_crossover", "params": {"fast": 10, "slow": 30}, **changes}
    visibility = fields.pop("visibility", Strategy.Visibility.PRIVATE)
    strategy = services.create_strategy(owner=owner, coin=coin, **fields)
    if visibility != strategy.visibility:
        Strategy.objects.filter(pk=strategy.pk).update(visibility=visibility)
        strategy.refresh_from_db()
    return strategy


def form_body(**changes) -> dict:
    return {
        "name": "Fast cross",
        "description": "",
        "kind": "sma_crossover",
        "coin": "bitcoin",
        "timeframe": "1d",
        "params.fast": "5",
        "params.slow": "20",
        **changes,
    }


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/strategies/",
        "/strategies/new/",
        "/strategies/1/",
        "/strategies/1/edit/",
        "/backtests/00000000-0000-0000-0000-000000000000/",
    ],
)
def test_pages_need_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")


@pytest.mark.parametrize("url", ["/strategies/1/clone/", "/strategies/1/backtests/"])
def test_changes_are_posts_only(alice_client, url):
    assert alice_client.get(url).status_code == 405


def test_nav_links_to_strategies(alice_client):
    page = alice_client.get("/dashboard/").content.decode()
    assert 'href="/strategies/"' in page


# --- the list --------------------------------------------------------------------------------------


def test_list_shows_mine_and_others_published(alice_client, alice, bob, analyst, coin):
    mine = strategy_for(alice, coin, name="Alice private")
    published = strategy_for(analyst, coin, name="Ana published", visibility="published")
    hidden = strategy_for(bob, coin, name="Bob private")
    response = alice_client.get("/strategies/")
    assert response.status_code == 200
    page = response.content.decode()
    my_section, published_section = page.split('data-testid="published-strategies"')
    assert f'data-strategy-id="{mine.pk}"' in my_section
    assert f'data-strategy-id="{published.pk}"' in published_section
    assert "by Ana" in published_section
    assert hidden.name not in page
    assert "SMA crossover" in page
    assert 'href="/strategies/new/"' in page


def test_list_shows_my_last_backtest_return(alice_client, alice, coin):
    strategy = strategy_for(alice, coin)
    now = timezone.now()
    common = {
        "strategy": strategy,
        "owner": alice,
        "kind": strategy.kind,
        "params": strategy.params,
        "coin": coin,
        "timeframe": "1d",
        "start": now - timedelta(days=30),
        "end": now,
        "initial_capital": 10_000,
        "fee_bps": 10,
        "slippage_bps": 0,
        "status": Backtest.Status.SUCCEEDED,
    }
    Backtest.objects.create(**common, metrics={"total_return": 0.5}, created_at=now - timedelta(days=1))
    newest = Backtest.objects.create(**common, metrics={"total_return": -0.0312})
    page = alice_client.get("/strategies/").content.decode()
    assert f'href="/backtests/{newest.pk}/" data-testid="last-return">\u22123.12%<' in page
    assert "2 runs" in page


def test_list_queries_do_not_grow_with_the_rows(alice_client, alice, analyst, coin, django_assert_max_num_queries):
    strategy_for(alice, coin)
    strategy_for(analyst, coin, visibility="published")
    with CaptureQueriesContext(connection) as few:
        alice_client.get("/strategies/")
    for n in range(4):
        strategy_for(alice, coin, name=f"Mine {n}")
        strategy_for(analyst, coin, name=f"Ana's {n}", visibility="published")
    with django_assert_max_num_queries(len(few)):
        assert alice_client.get("/strategies/").status_code == 200


def _backtested(owner, strategy, *, total_return: float) -> None:
    now = timezone.now()
    Backtest.objects.create(
        strategy=strategy,
        owner=owner,
        kind=strategy.kind,
        params=strategy.params,
        coin=strategy.coin,
        timeframe="1d",
        start=now - timedelta(days=30),
        end=now,
        initial_capital=10_000,
        fee_bps=10,
        slippage_bps=0,
        status=Backtest.Status.SUCCEEDED,
        metrics={"total_return": total_return},
    )


def _add_strategies(alice, analyst, coin, count: int) -> None:
    for n in range(count):
        mine = strategy_for(alice, coin, name=f"Mine {n}")
        published = strategy_for(analyst, coin, name=f"Ana's {n}", visibility="published")
        _backtested(alice, mine, total_return=0.01 * n)
        _backtested(alice, published, total_return=-0.01 * n)


def test_list_page_queries_are_the_same_at_1_and_20_strategies(
    alice_client, alice, analyst, coin, django_assert_num_queries
):
    _add_strategies(alice, analyst, coin, 1)
    alice_client.get("/strategies/")  # the session's first request records its use once
    with CaptureQueriesContext(connection) as one:
        page = alice_client.get("/strategies/").content.decode()
    assert page.count('data-testid="last-return"') == 2
    _add_strategies(alice, analyst, coin, 19)
    with django_assert_num_queries(len(one)):
        page = alice_client.get("/strategies/").content.decode()
    assert page.count('data-testid="last-return"') == 40


def test_editing_keeps_a_coin_that_lost_its_quote(alice_client, alice, coin):
    dead = Coin.objects.create(id="deadcoin", symbol="dead", name="Dead coin")
    strategy = strategy_for(alice, dead)
    page = alice_client.get(f"/strategies/{strategy.pk}/edit/").content.decode()
    assert '<option value="deadcoin" selected>' in page
    assert alice_client.post(f"/strategies/{strategy.pk}/edit/", form_body(coin="deadcoin")).status_code == 302
    assert 'value="deadcoin"' not in alice_client.get("/strategies/new/").content.decode()


def test_empty_list_invites_a_first_strategy(alice_client):
    page = alice_client.get("/strategies/").content.decode()
    assert "No strategy yet" in page
    assert "Nobody else has published a strategy yet" in page


# --- create and edit -------------------------------------------------------------------------------


def test_form_is_built_from_the_kind_declaration(alice_client, coin):
    page = alice_client.get("/strategies/new/").content.decode()
    fast = re.search(r'<input[^>]*name="params.fast"[^>]*>', page).group(0)
    assert 'type="number"' in fast
    assert 'min="2"' in fast
    assert 'max="500"' in fast
    assert 'step="1"' in fast
    assert 'value="20"' in fast
    assert "Bars in the fast average." in page
    assert 'name="visibility"' not in page  # a trader does not choose


def test_switching_kind_serves_only_its_parameters(alice_client, coin):
    response = alice_client.get("/strategies/new/", {"kind": "dca"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<form" not in page
    assert 'name="params.amount"' in page
    assert 'name="params.every_days"' in page
    assert 'name="params.fast"' not in page
    amount = re.search(r'<input[^>]*name="params.amount"[^>]*>', page).group(0)
    assert 'step="0.01"' in amount
    assert 'min="0.01"' in amount
    assert "HX-Request" in response.headers["Vary"]


def test_create_with_valid_params_redirects_to_the_strategy(alice_client, alice, coin):
    response = alice_client.post("/strategies/new/", form_body())
    strategy = Strategy.objects.get(owner=alice)
    assert response.status_code == 302
    assert response.url == f"/strategies/{strategy.pk}/"
    assert (strategy.name, strategy.kind, strategy.params) == ("Fast cross", "sma_crossover", {"fast": 5, "slow": 20})
    assert strategy.visibility == "private"
    page = alice_client.get(response.url).content.decode()
    assert "Fast cross" in page
    assert 'data-testid="edit"' in page
    assert 'data-testid="clone"' not in page


def test_create_only_reads_the_chosen_kinds_parameters(alice_client, alice, coin):
    body = form_body(kind="rsi_reversion", **{"params.period": "10", "params.lower": "25.5", "params.upper": "75"})
    assert alice_client.post("/strategies/new/", body).status_code == 302
    assert Strategy.objects.get(owner=alice).params == {"period": 10, "lower": "25.5", "upper": "75"}


def test_fast_not_below_slow_is_shown_beside_fast(alice_client, alice, coin):
    response = alice_client.post("/strategies/new/", form_body(**{"params.fast": "30", "params.slow": "20"}))
    assert response.status_code == 400
    assert field_errors(response, "params.fast") == ["fast must be shorter than slow."]
    assert not Strategy.objects.exists()


def test_out_of_bounds_and_missing_fields_are_shown_beside_them(alice_client, coin):
    response = alice_client.post("/strategies/new/", form_body(name=" ", **{"params.slow": "5000"}))
    assert response.status_code == 400
    assert field_errors(response, "name")
    assert field_errors(response, "params.slow") == ["slow must be between 3 and 1000."]


def test_trader_cannot_publish(alice_client, coin):
    response = alice_client.post("/strategies/new/", form_body(visibility="published"))
    assert response.status_code == 400
    assert field_errors(response, "visibility") == ["Only analysts and admins can publish strategies."]
    assert not Strategy.objects.exists()


def test_analyst_chooses_visibility_and_publishes(client, analyst, coin):
    log_in(client, analyst)
    assert 'name="visibility"' in client.get("/strategies/new/").content.decode()
    assert client.post("/strategies/new/", form_body(visibility="published")).status_code == 302
    assert Strategy.objects.get(owner=analyst).visibility == "published"


def test_owner_edits_and_changes_kind(alice_client, alice, coin):
    strategy = strategy_for(alice, coin)
    page = alice_client.get(f"/strategies/{strategy.pk}/edit/").content.decode()
    assert re.search(r'<input[^>]*name="params.fast"[^>]*value="10"', page)
    response = alice_client.post(
        f"/strategies/{strategy.pk}/edit/",
        form_body(name="Breakout now", kind="breakout", **{"params.lookback": "15"}),
    )
    assert response.status_code == 302
    strategy.refresh_from_db()
    assert (strategy.name, strategy.kind, strategy.params) == ("Breakout now", "breakout", {"lookback": 15})


def test_invalid_edit_keeps_the_strategy(alice_client, alice, coin):
    strategy = strategy_for(alice, coin)
    response = alice_client.post(f"/strategies/{strategy.pk}/edit/", form_body(**{"params.fast": "50"}))
    assert response.status_code == 400
    assert field_errors(response, "params.fast") == ["fast must be shorter than slow."]
    strategy.refresh_from_db()
    assert strategy.params == {"fast": 10, "slow": 30}


def test_edit_by_non_owner_is_404_even_when_published(bob_client, alice, analyst, coin):
    private = strategy_for(alice, coin)
    published = strategy_for(analyst, coin, visibility="published")
    for strategy in (private, published):
        assert bob_client.get(f"/strategies/{strategy.pk}/edit/").status_code == 404
        assert bob_client.post(f"/strategies/{strategy.pk}/edit/", form_body(name="Mine now")).status_code == 404
        strategy.refresh_from_db()
        assert strategy.name == "Golden cross"


def test_private_strategy_of_another_user_is_404(bob_client, alice, coin):
    strategy = strategy_for(alice, coin)
    assert bob_client.get(f"/strategies/{strategy.pk}/").status_code == 404
    assert bob_client.post(f"/strategies/{strategy.pk}/clone/").status_code == 404
    assert bob_client.post(f"/strategies/{strategy.pk}/backtests/", {}).status_code == 404
    assert not Strategy.objects.filter(owner__email="bob@example.com").exists()


def test_operator_pages_do_not_show_others_private_strategies(client, alice, coin):
    strategy = strategy_for(alice, coin)
    operator = make_user("op@example.com", role="admin", is_staff=True)
    log_in(client, operator)
    assert client.get(f"/strategies/{strategy.pk}/").status_code == 404
    assert strategy.name not in client.get("/strategies/").content.decode()


# --- clone ---------------------------------------------------------------------------------------


def test_clone_a_published_strategy(bob_client, bob, analyst, coin):
    original = strategy_for(analyst, coin, name="Ana's cross", visibility="published")
    page = bob_client.get(f"/strategies/{original.pk}/").content.decode()
    assert 'data-testid="clone"' in page
    assert 'data-testid="edit"' not in page
    response = bob_client.post(f"/strategies/{original.pk}/clone/")
    copy = Strategy.objects.get(owner=bob)
    assert response.status_code == 302
    assert response.url == f"/strategies/{copy.pk}/"
    assert (copy.cloned_from, copy.visibility, copy.params) == (original, "private", original.params)
    page = bob_client.get(response.url).content.decode()
    assert f'href="/strategies/{original.pk}/" data-testid="cloned-from"' in page


# --- backtests -----------------------------------------------------------------------------------


@pytest.fixture
def run_backtest(django_capture_on_commit_callbacks):
    """POST the run form; the task queued when the backtest commits runs before this returns (eager here)."""

    def post(client, strategy, **changes):
        today = timezone.now().date()
        body = {
            "start": (today - timedelta(days=365)).isoformat(),
            "end": today.isoformat(),
            "initial_capital": "10000",
            "fee_bps": "10",
            "slippage_bps": "0",
            **changes,
        }
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/strategies/{strategy.pk}/backtests/", body)

    return post


def test_run_form_has_the_defaults(alice_client, alice, coin):
    strategy = strategy_for(alice, coin)
    page = alice_client.get(f"/strategies/{strategy.pk}/").content.decode()
    today = timezone.now().date()
    assert f'name="start" value="{(today - timedelta(days=365)).isoformat()}"' in page
    assert f'name="end" value="{today.isoformat()}"' in page
    assert re.search(r'name="initial_capital" value="10000"', page)
    assert re.search(r'name="fee_bps" value="10"', page)
    assert re.search(r'name="slippage_bps" value="0"', page)


def test_run_backtest_redirects_to_results_with_metrics(alice_client, alice, market, run_backtest):
    strategy = strategy_for(alice, Coin.objects.get(pk="bitcoin"))
    response = run_backtest(alice_client, strategy)
    backtest = Backtest.objects.get(strategy=strategy)
    assert response.status_code == 302
    assert response.url == f"/backtests/{backtest.pk}/"
    assert backtest.status == Backtest.Status.SUCCEEDED
    assert (backtest.initial_capital, backtest.fee_bps, backtest.slippage_bps) == (10_000, 10, 0)

    page = alice_client.get(response.url).content.decode()
    assert 'data-status="succeeded"' in page
    for key in [
        "total_return",
        "cagr",
        "sharpe",
        "sortino",
        "max_drawdown",
        "max_drawdown_duration_days",
        "win_rate",
        "profit_factor",
        "exposure",
        "trades",
        "buy_and_hold_return",
        "fees_paid",
        "final_equity",
    ]:
        assert f'data-metric="{key}"' in page, key
    assert 'data-testid="data-range"' in page
    assert 'data-testid="range-note"' not in page  # the demo year covers the default range (but its boundary bar)
    assert f'data-backtest-url="/api/v1/backtests/{backtest.pk}/"' in page
    assert 'data-chart="equity"' in page
    assert 'data-chart="drawdown"' in page
    assert "hx-trigger" not in page  # finished: nothing polls
    assert "/static/js/backtest.js" in page
    assert "<script>" not in page
    assert ' style="' not in page

    # the run is listed on the strategy page and its return on the list
    assert f'href="/backtests/{backtest.pk}/"' in alice_client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert 'data-testid="last-return"' in alice_client.get("/strategies/").content.decode()
    # the chart data comes from the API with the session cookie
    api = alice_client.get(f"/api/v1/backtests/{backtest.pk}/")
    assert api.status_code == 200
    assert len(api.json()["equity_curve"]) == backtest.bars


def test_backtest_of_a_published_strategy_is_the_runners_own(bob_client, bob, analyst, market, run_backtest):
    strategy = strategy_for(analyst, Coin.objects.get(pk="bitcoin"), visibility="published")
    response = run_backtest(bob_client, strategy)
    assert response.status_code == 302
    assert Backtest.objects.get().owner == bob


def test_invalid_backtest_inputs_are_shown_beside_them(alice_client, alice, coin, run_backtest):
    strategy = strategy_for(alice, coin)
    today = timezone.now().date()
    response = run_backtest(
        alice_client, strategy, end=(today - timedelta(days=400)).isoformat(), initial_capital="0", fee_bps="-1"
    )
    assert response.status_code == 400
    assert field_errors(response, "end") == ["The end must be after the start."]
    assert field_errors(response, "initial_capital") == ["Enter a capital above 0."]
    assert field_errors(response, "fee_bps")
    assert not Backtest.objects.exists()


def test_range_note_only_when_a_whole_bar_is_missing(alice_client, alice, coin):
    strategy = strategy_for(alice, coin)
    now = timezone.now()
    day = timedelta(days=1)
    finished = {"status": Backtest.Status.SUCCEEDED, "progress": 100, "bars": 10, "metrics": {"total_return": 0.1}}
    covered = queued_backtest(
        strategy, alice, start=now - 10 * day, end=now, data_start=now - 10 * day + timedelta(hours=3), **finished
    )
    covered.data_end = now - timedelta(hours=5)
    covered.save()
    page = alice_client.get(f"/backtests/{covered.pk}/").content.decode()
    assert 'data-testid="data-range"' in page
    assert 'data-testid="range-note"' not in page

    short = queued_backtest(
        strategy, alice, start=now - 10 * day, end=now + 5 * day, data_start=now - 8 * day, data_end=now, **finished
    )
    note = re.search(r'data-testid="range-note">([^<]+)<', alice_client.get(f"/backtests/{short.pk}/").content.decode())
    assert "stored history starts on" in note.group(1)
    assert "the last stored bar is on" in note.group(1)


def test_failed_backtest_shows_its_reason(alice_client, alice, coin, run_backtest):
    strategy = strategy_for(alice, coin)  # the coin has no stored history
    response = run_backtest(alice_client, strategy)
    assert response.status_code == 302
    page = alice_client.get(response.url).content.decode()
    assert 'data-testid="backtest-error"' in page
    assert "No stored bitcoin history" in page
    assert "hx-trigger" not in page


def queued_backtest(strategy, owner, **changes) -> Backtest:
    now = timezone.now()
    fields = {
        "strategy": strategy,
        "owner": owner,
        "kind": strategy.kind,
        "params": strategy.params,
        "coin": strategy.coin,
        "timeframe": strategy.timeframe,
        "start": now - timedelta(days=30),
        "end": now,
        "initial_capital": 10_000,
        "fee_bps": 10,
        "slippage_bps": 0,
        **changes,
    }
    return Backtest.objects.create(**fields)


def test_progress_partial_polls_while_queued(alice_client, alice, coin):
    backtest = queued_backtest(strategy_for(alice, coin), alice)
    page = alice_client.get(f"/backtests/{backtest.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in page
    assert "<html" in page

    response = alice_client.get(f"/backtests/{backtest.pk}/", HTTP_HX_REQUEST="true")
    partial = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in partial
    assert 'id="backtest-results"' in partial
    assert f'hx-get="/backtests/{backtest.pk}/" hx-trigger="every 1s" hx-swap="outerHTML"' in partial
    assert '<progress class="progress" max="100" value="0"' in partial
    assert "HX-Request" in response.headers["Vary"]

    Backtest.objects.filter(pk=backtest.pk).update(status=Backtest.Status.RUNNING, progress=30)
    partial = alice_client.get(f"/backtests/{backtest.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'value="30"' in partial
    assert "Running" in partial


def test_progress_partial_stops_polling_once_finished(alice_client, alice, coin):
    backtest = queued_backtest(
        strategy_for(alice, coin), alice, status=Backtest.Status.FAILED, progress=30, error="No stored history."
    )
    partial = alice_client.get(f"/backtests/{backtest.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in partial
    assert 'id="backtest-results"' in partial
    assert "No stored history." in partial


def test_a_long_queue_suggests_checking_the_worker(alice_client, alice, coin):
    backtest = queued_backtest(strategy_for(alice, coin), alice, created_at=timezone.now() - timedelta(minutes=2))
    partial = alice_client.get(f"/backtests/{backtest.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "celery -A cryptodesk worker" in partial


def test_another_users_backtest_is_404(bob_client, alice, analyst, coin):
    mine = queued_backtest(strategy_for(alice, coin), alice)
    on_published = queued_backtest(strategy_for(analyst, coin, visibility="published"), alice)
    for backtest in (mine, on_published):
        assert bob_client.get(f"/backtests/{backtest.pk}/").status_code == 404
        assert bob_client.get(f"/backtests/{backtest.pk}/", HTTP_HX_REQUEST="true").status_code == 404


def test_strategy_page_lists_only_my_backtests(bob_client, alice, bob, analyst, coin):
    strategy = strategy_for(analyst, coin, visibility="published")
    alices = queued_backtest(strategy, alice)
    bobs = queued_backtest(strategy, bob)
    page = bob_client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert f"/backtests/{bobs.pk}/" in page
    assert f"/backtests/{alices.pk}/" not in page


# --- paper trading -----------------------------------------------------------------------------------

PAPER_DAY_0 = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


def add_bar(coin: Coin, day: int, price: str) -> None:
    """A daily bar `day` days from day 0, and a fresh quote at that price."""
    PricePoint.objects.create(coin=coin, ts=PAPER_DAY_0 + timedelta(days=day, hours=12), price=Decimal(price))
    Quote.objects.update_or_create(
        coin=coin, defaults={"current_price": Decimal(price), "last_updated": timezone.now()}
    )


@pytest.fixture
def paper(alice):
    """A falling test coin, alice's fast crossover on it and a funded portfolio."""
    coin = Coin.objects.create(id="testcoin", symbol="tst", name="Test coin")
    for day, price in enumerate(["10", "9", "8", "7"], start=-4):
        add_bar(coin, day, price)
    strategy = strategy_for(alice, coin, name="Fast cross", params={"fast": 2, "slow": 3})
    portfolio = portfolio_services.create_portfolio(owner=alice, name="Paper", starting_cash=Decimal("10000"))
    return strategy, portfolio


def start_run(strategy, portfolio, owner) -> PaperRun:
    return services.start_paper_run(strategy=strategy, user=owner, portfolio=portfolio)


def test_start_a_paper_run_from_the_strategy_page(alice_client, alice, paper):
    strategy, portfolio = paper
    page = alice_client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert 'data-testid="paper-form"' in page
    assert f'<option value="{portfolio.pk}"' in page
    response = alice_client.post(f"/strategies/{strategy.pk}/paper/", {"portfolio": portfolio.pk}, follow=True)
    run = PaperRun.objects.get()
    assert response.redirect_chain == [(f"/paper-runs/{run.pk}/", 302)]
    assert (run.owner, run.portfolio, run.status, run.capital) == (alice, portfolio, "active", Decimal("10000"))
    assert "now trades on paper in Paper" in response.content.decode()
    listed = alice_client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert f"/paper-runs/{run.pk}/" in listed
    assert f"/paper-runs/{run.pk}/" in alice_client.get("/paper-runs/").content.decode()


def test_refused_paper_runs_are_shown_beside_the_portfolio(alice_client, alice, bob, paper):
    strategy, portfolio = paper
    start_run(strategy, portfolio, alice)
    url = f"/strategies/{strategy.pk}/paper/"
    again = alice_client.post(url, {"portfolio": portfolio.pk})
    assert again.status_code == 400
    assert field_errors(again, "portfolio") == ["A strategy already trades testcoin in this portfolio."]
    empty = portfolio_services.create_portfolio(owner=alice, name="Empty", starting_cash=Decimal("0"))
    broke = alice_client.post(url, {"portfolio": empty.pk})
    assert broke.status_code == 400
    assert field_errors(broke, "portfolio") == ["This portfolio has no available cash to trade with."]
    bobs = portfolio_services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("100"))
    not_mine = alice_client.post(url, {"portfolio": bobs.pk})
    assert not_mine.status_code == 400
    assert field_errors(not_mine, "portfolio") == ["Choose one of your portfolios."]
    assert f'<option value="{bobs.pk}"' not in not_mine.content.decode()
    assert PaperRun.objects.count() == 1


def test_run_page_without_fills_says_why(alice_client, alice, paper):
    strategy, portfolio = paper
    run = start_run(strategy, portfolio, alice)
    page = alice_client.get(f"/paper-runs/{run.pk}/").content.decode()
    for section in ("run", "drift", "paper-return", "backtest-return", "paper-fills", "backtest-trades", "drift-notes"):
        assert f'data-testid="{section}"' in page
    assert "No fills yet: the strategy acts after the next market sync on a new bar" in page
    assert "needs at least two daily bars since the run started" in page
    assert f"/portfolios/{portfolio.pk}/" in page
    assert 'data-testid="stop"' in page


def test_run_page_puts_paper_fills_beside_backtest_trades(alice_client, alice, paper):
    strategy, portfolio = paper
    run = start_run(strategy, portfolio, alice)
    PaperRun.objects.filter(pk=run.pk).update(started_at=PAPER_DAY_0 - timedelta(minutes=1))
    run.refresh_from_db()
    add_bar(strategy.coin, 0, "12")  # the fast average crosses above: buy
    services.evaluate_paper_run(run)
    add_bar(strategy.coin, 1, "5")
    add_bar(strategy.coin, 2, "3")  # and back below: sell
    run.refresh_from_db()
    services.evaluate_paper_run(run)
    page = alice_client.get(f"/paper-runs/{run.pk}/").content.decode()
    fills = page.split('data-testid="paper-fills"')[1].split('data-testid="backtest-trades"')[0]
    assert 'class="side side-buy"' in fills
    assert 'class="side side-sell"' in fills
    trades = page.split('data-testid="backtest-trades"')[1].split('data-testid="drift-notes"')[0]
    assert "1 round trip " in trades
    assert "$12.00" in trades
    assert "$3.00" in trades
    assert "0.00 pp" in page  # same buys and sells at the same prices and fees: no drift
    assert "fill at the last synced price" in page
    assert "No fills yet" not in page


def test_stop_a_paper_run(alice_client, alice, paper):
    strategy, portfolio = paper
    run = start_run(strategy, portfolio, alice)
    response = alice_client.post(f"/paper-runs/{run.pk}/stop/", follow=True)
    assert response.redirect_chain == [(f"/paper-runs/{run.pk}/", 302)]
    run.refresh_from_db()
    assert run.status == "stopped"
    assert run.stopped_at is not None
    page = response.content.decode()
    assert "Paper run stopped" in page
    assert 'data-testid="stop"' not in page
    assert "No fills: the run stopped before its rule signalled a trade." in page
    assert alice_client.post(f"/paper-runs/{run.pk}/stop/").status_code == 302  # stopping again changes nothing
    assert alice_client.get(f"/paper-runs/{run.pk}/stop/").status_code == 405


def test_another_users_paper_run_is_404_and_cannot_be_stopped(bob_client, alice, paper):
    strategy, portfolio = paper
    run = start_run(strategy, portfolio, alice)
    assert bob_client.get(f"/paper-runs/{run.pk}/").status_code == 404
    assert bob_client.post(f"/paper-runs/{run.pk}/stop/").status_code == 404
    assert PaperRun.objects.get().status == "active"
    assert f"/paper-runs/{run.pk}/" not in bob_client.get("/paper-runs/").content.decode()
    assert bob_client.post(f"/strategies/{strategy.pk}/paper/", {"portfolio": portfolio.pk}).status_code == 404
