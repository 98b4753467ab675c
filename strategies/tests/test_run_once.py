""" "Run backtest" submitted twice with one form token (a double click, a resent POST) makes one backtest."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conftest import PASSWORD, needs_concurrent_db, run_concurrently
from market.models import Coin, Quote
from strategies import services
from strategies.models import Backtest

pytestmark = pytest.mark.django_db

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def strategy(alice):
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=coin, current_price="50000", last_updated=timezone.now())
    return services.create_strategy(
        owner=alice, coin=coin, name="Golden cross", kind="sma_crossover", params={"fast": 10, "slow": 30}
    )


def logged_in(user) -> Client:
    client = Client()
    assert client.post("/login/", {"email": user.email, "password": PASSWORD}).status_code == 302
    return client


def run(client, strategy, **changes):
    today = timezone.now().date()
    body = {
        "start": (today - timedelta(days=90)).isoformat(),
        "end": today.isoformat(),
        "initial_capital": "10,000",
        "fee_bps": "10",
        "slippage_bps": "0",
        **changes,
    }
    return client.post(f"/strategies/{strategy.pk}/backtests/", body)


def test_the_run_form_carries_a_fresh_token(alice, strategy):
    client = logged_in(alice)
    tokens = [
        re.search(r'name="submission_token" value="([0-9a-f]{32})"', client.get(f"/strategies/{strategy.pk}/").text)
        for _ in range(2)
    ]
    assert all(tokens)
    assert tokens[0].group(1) != tokens[1].group(1)
    page = client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert re.search(r'<form[^>]*data-submit-once[^>]*data-testid="backtest-form"', page)
    assert "/static/js/forms.js" in page


def test_two_posts_with_one_token_make_one_backtest(alice, strategy):
    client = logged_in(alice)
    first = run(client, strategy, submission_token=TOKEN)
    second = run(client, strategy, submission_token=TOKEN)
    backtest = Backtest.objects.get()
    assert first.status_code == second.status_code == 302
    assert first.url == second.url == f"/backtests/{backtest.pk}/"
    assert "That backtest was already started: it was not run twice." in client.get(second.url).content.decode()


def test_another_token_is_another_backtest(alice, strategy):
    client = logged_in(alice)
    run(client, strategy, submission_token=TOKEN)
    run(client, strategy, submission_token="f" * 32)
    run(client, strategy)  # no token (an old page): runs, as before
    assert Backtest.objects.count() == 3


def test_a_token_is_the_users_own(alice, bob, strategy):
    """Bob sending Alice's token (he cannot see it, but say he guessed it) gets his own backtest, not hers."""
    strategy.visibility = "published"
    strategy.save(update_fields=["visibility"])
    run(logged_in(alice), strategy, submission_token=TOKEN)
    response = run(logged_in(bob), strategy, submission_token=TOKEN)
    mine = Backtest.objects.get(owner=bob)
    assert response.url == f"/backtests/{mine.pk}/"
    assert Backtest.objects.count() == 2


def test_a_refused_run_does_not_use_the_token_up(alice, strategy, settings):
    client = logged_in(alice)
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 0
    refused = run(client, strategy, submission_token=TOKEN)
    assert refused.status_code == 400
    assert not Backtest.objects.exists()
    settings.BACKTEST_MAX_ACTIVE_PER_USER = 3
    assert run(client, strategy, submission_token=TOKEN).status_code == 302
    assert Backtest.objects.count() == 1


def test_an_invalid_form_shows_its_errors_and_a_new_token(alice, strategy):
    client = logged_in(alice)
    response = run(client, strategy, submission_token=TOKEN, initial_capital="1,00")
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-field-error="initial_capital"' in page
    assert f'value="{TOKEN}"' not in page
    assert not Backtest.objects.exists()


@needs_concurrent_db
@pytest.mark.django_db(transaction=True)
def test_two_posts_at_once_with_one_token_make_one_backtest(alice, strategy):
    clients = [logged_in(alice), logged_in(alice)]
    responses = run_concurrently(2, lambda index: run(clients[index], strategy, submission_token=TOKEN))
    backtest = Backtest.objects.get()
    assert sorted(response.status_code for response in responses) == [302, 302]
    assert {response.url for response in responses} == {f"/backtests/{backtest.pk}/"}
