"""Market pages, logos, admin and commands."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from conftest import PASSWORD, make_user
from market.models import Coin, Quote, Source, SyncRun

from .payloads import markets
from .test_api import add_coin

pytestmark = pytest.mark.django_db


@pytest.fixture
def coins():
    for i in range(1, 56):
        add_coin(f"coin-{i:02}", f"c{i}", str(i), rank=i, cap=str(1000 - i))
    add_coin("ethereum", "eth", "3100", rank=99, cap="1")


def test_markets_page_lists_paginates_and_searches(client, coins):
    page = client.get("/markets/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="coin-cell"') == 50
    assert "Page 1 of 2" in html
    assert 'class="sparkline' in html
    found = client.get("/markets/?search=ether").content.decode()
    assert found.count('class="coin-cell"') == 1
    assert "Ethereum" in found


def test_htmx_requests_get_only_the_table(client, coins):
    partial = client.get("/markets/?ordering=-current_price", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial
    assert 'data-testid="coin-table"' in partial
    assert partial.index("Ethereum") < partial.index("Coin-55")  # sorted by price, descending
    assert 'aria-sort="descending"' in partial


def test_bad_ordering_shows_an_error_not_a_crash(client, coins):
    page = client.get("/markets/?ordering=sideways")
    assert page.status_code == 200
    assert "Select a valid choice" in page.content.decode()


def test_coin_page_shows_freshness_and_stale_warning(client, settings):
    settings.MARKET_STALE_AFTER = timedelta(minutes=15)
    add_coin("fresh", "frs", "2", rank=1)
    add_coin("old", "old", "2", rank=2, updated=timezone.now() - timedelta(hours=2))
    fresh = client.get("/markets/fresh/").content.decode()
    assert "Updated" in fresh
    assert "Stale price" not in fresh
    assert 'data-chart-url="/markets/fresh/chart/"' in fresh
    stale = client.get("/markets/OLD/").content.decode()  # symbols work too
    assert "Stale price" in stale
    assert client.get("/markets/nothing/").status_code == 404


def test_logo_is_a_monogram_when_none_is_stored(client):
    add_coin("bitcoin", "btc", "1", rank=1)
    response = client.get("/coins/bitcoin/logo/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert b">BTC</text>" in response.content
    assert "max-age=86400" in response["Cache-Control"]
    assert client.get("/coins/none/logo/").status_code == 404


def test_logos_are_fetched_once_into_our_storage(client, settings, tmp_path):
    import httpx

    from market.logos import fetch_missing_logos

    settings.MEDIA_ROOT = tmp_path
    add_coin("bitcoin", "btc", "1", rank=1)
    add_coin("ethereum", "eth", "1", rank=2)
    Coin.objects.filter(pk="bitcoin").update(image_url="https://images.example/btc.png")
    Coin.objects.filter(pk="ethereum").update(image_url="https://images.example/eth.png")
    png = b"\x89PNG\r\n\x1a\nfake"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/btc.png":
            return httpx.Response(200, content=png, headers={"content-type": "image/png"})
        return httpx.Response(200, text="<html>", headers={"content-type": "text/html"})  # refused

    assert fetch_missing_logos(transport=httpx.MockTransport(handler)) == 1
    assert Coin.objects.get(pk="bitcoin").logo.name == "logos/bitcoin.png"
    assert client.get("/coins/bitcoin/logo/").getvalue() == png
    assert client.get("/coins/ethereum/logo/")["Content-Type"] == "image/svg+xml"
    assert fetch_missing_logos(transport=httpx.MockTransport(handler)) == 0  # once: bitcoin is stored


def test_dashboard_shows_movers_and_global(client, alice, django_capture_on_commit_callbacks):
    from market.demo.snapshot import load_snapshot

    with django_capture_on_commit_callbacks(execute=True):
        load_snapshot()
    client.post("/login/", {"email": alice.email, "password": PASSWORD})
    html = client.get("/dashboard/").content.decode()
    assert "Top gainers (24h)" in html
    assert 'data-testid="global-stats"' in html
    assert html.count('href="/markets/') >= 17  # 5 gainers, 5 losers, 7 trending


def test_admin_lists_sync_runs_and_queues_a_sync(client, monkeypatch):
    from market import tasks

    queued = []
    monkeypatch.setattr(tasks.sync_markets_task, "apply_async", lambda *args, **kwargs: queued.append(args))
    make_user("ops@example.com", role="admin")
    client.post("/login/", {"email": "ops@example.com", "password": PASSWORD})
    failed = SyncRun.objects.create(
        kind=SyncRun.Kind.MARKETS, status=SyncRun.Status.FAILED, error="coins/markets: HTTP 502"
    )
    page = client.get("/admin/market/syncrun/").content.decode()
    assert "coins/markets: HTTP 502" in page
    response = client.post(
        "/admin/market/syncrun/", {"action": "sync_now", "_selected_action": [failed.pk]}, follow=True
    )
    assert "queued" in response.content.decode()
    assert SyncRun.objects.filter(status=SyncRun.Status.QUEUED).count() == 1


def test_sync_markets_command_prints_a_summary(cg_mock, settings):
    settings.COINGECKO_BASE_URL = "https://cg.test/api/v3"
    cg_mock.get("/coins/markets").respond(json=markets(4))
    out = io.StringIO()
    call_command("sync_markets", stdout=out)
    assert "markets: succeeded" in out.getvalue()
    assert "4 coins, 4 points written, 0 skipped, 1 API calls" in out.getvalue()


def test_sync_markets_command_fails_clearly(cg_mock, settings):
    from django.core.management.base import CommandError

    settings.COINGECKO_BASE_URL = "https://cg.test/api/v3"
    cg_mock.get("/coins/markets").respond(401, json={"error": "bad key"})
    with pytest.raises(CommandError, match="markets sync failed: /coins/markets: HTTP 401"):
        call_command("sync_markets")


def test_seed_demo_is_idempotent():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert text.count("Demo login: demo@cryptodesk.local / cryptodesk-demo") == 2
    assert "Demo market loaded: 101 coins" in text
    assert "Market data already present" in text
    assert Quote.objects.filter(source=Source.DEMO).count() == 101


def test_table_refresh_and_search_follow_the_current_view(client, coins):
    partial = client.get("/markets/?search=coin&ordering=-market_cap&page=2", HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-get="/markets/?search=coin&amp;ordering=-market_cap&amp;page=2" hx-trigger="every 60s"' in partial
    assert '<input type="hidden" name="ordering" value="-market_cap" form="coin-search-form">' in partial


def test_seed_demo_gives_the_demo_account_a_portfolio(settings):
    from portfolios.models import Alert, Holding, Portfolio, Watchlist

    settings.PAPER_ALLOW_STALE_PRICES = False  # demo prices are fresh right after loading
    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())
    portfolio = Portfolio.objects.get(owner__email="demo@cryptodesk.local")
    assert Holding.objects.filter(portfolio=portfolio, quantity__gt=0).count() == 3
    assert portfolio.cash < 100000
    assert Watchlist.objects.filter(owner=portfolio.owner).count() == 1
    assert Alert.objects.filter(owner=portfolio.owner).count() == 2  # above and below the bitcoin price


def test_seed_demo_gives_the_demo_account_strategies(django_capture_on_commit_callbacks):
    from strategies.models import Backtest, Strategy

    with django_capture_on_commit_callbacks(execute=True):  # the demo backtest runs once its row commits
        call_command("seed_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo strategies: left as they are." in out.getvalue()
    mine = Strategy.objects.get(owner__email="demo@cryptodesk.local", name="BTC golden cross")
    assert Strategy.objects.filter(visibility="published", owner__role="analyst").count() == 1
    backtest = Backtest.objects.get(strategy=mine)
    assert backtest.status == "succeeded", backtest.error
    assert backtest.metrics["trades"] >= 1
