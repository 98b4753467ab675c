"""Paper-trading pages: owner-only, post/redirect/get, refusals beside their field, a constant-query dashboard."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import PASSWORD, make_user
from portfolios import selectors, services
from portfolios.models import Alert, CashTransfer, Notification, Order, Portfolio, PortfolioSnapshot, Trade, Watchlist

from .conftest import set_price

pytestmark = pytest.mark.django_db


def field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{name}">([^<]+)<', response.content.decode())


def log_in(client, user) -> None:
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content


@pytest.fixture
def alice_client(client, alice):
    log_in(client, alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    log_in(client, bob)
    return client


def ticket(portfolio, client, side="buy", quantity="2", *, type="market", limit_price="", coin="bitcoin", **extra):
    body = {"side": side, "type": type, "coin": coin, "quantity": quantity, "limit_price": limit_price, **extra}
    return client.post(f"/portfolios/{portfolio.pk}/orders/", body)


# --- access ---------------------------------------------------------------------------------------

PAGES = ["/dashboard/", "/portfolios/", "/watchlists/", "/alerts/", "/notifications/"]


@pytest.mark.parametrize("url", [*PAGES, "/portfolios/1/", "/dashboard/series/"])
def test_pages_need_a_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/login/?next=")


def test_each_page_renders_for_its_owner(alice_client, alice_portfolio):
    for url in [*PAGES, f"/portfolios/{alice_portfolio.pk}/"]:
        response = alice_client.get(url)
        assert response.status_code == 200, url
        assert 'data-testid="bell"' in response.content.decode(), url
    detail = alice_client.get(f"/portfolios/{alice_portfolio.pk}/").content.decode()
    assert 'data-testid="order-ticket"' in detail
    assert 'data-testid="allocation-donut"' in detail  # all cash is still an allocation
    assert f'href="/api/v1/trades/?format=csv&amp;portfolio={alice_portfolio.pk}"' in detail
    assert f'data-series-url="/api/v1/portfolios/{alice_portfolio.pk}/history/"' in detail
    assert "Sharpe ratio" in detail
    assert " style=" not in detail
    assert "<style" not in detail


def test_others_objects_are_404(client, alice, bob, alice_portfolio, btc):
    order, _ = services.place_order(
        user=alice,
        portfolio_id=alice_portfolio.pk,
        coin_id="bitcoin",
        side="buy",
        type="limit",
        quantity=Decimal(1),
        limit_price=Decimal(50),
    )
    watchlist = services.save_watchlist(owner=alice, name="Alice's", coin_ids=["bitcoin"])
    alert = Alert.objects.create(owner=alice, coin_id="bitcoin", condition="price_above", threshold=Decimal(200))
    note = Notification.objects.create(user=alice, title="BTC moved")
    log_in(client, bob)
    p = alice_portfolio.pk
    assert client.get(f"/portfolios/{p}/").status_code == 404
    assert (
        client.get(f"/portfolios/{p}/orders/preview/?side=buy&type=market&coin=bitcoin&quantity=1").status_code == 404
    )
    assert ticket(alice_portfolio, client).status_code == 404
    assert client.post(f"/portfolios/{p}/transfers/", {"kind": "deposit", "amount": "1"}).status_code == 404
    assert client.post(f"/orders/{order.pk}/cancel/").status_code == 404
    assert client.post(f"/watchlists/{watchlist.pk}/rename/", {"name": "Mine"}).status_code == 404
    assert client.post(f"/watchlists/{watchlist.pk}/coins/bitcoin/remove/").status_code == 404
    assert client.post(f"/watchlists/{watchlist.pk}/delete/").status_code == 404
    assert client.post("/watchlists/watch/", {"coin": "bitcoin", "watchlist": watchlist.pk}).status_code == 404
    assert client.post(f"/alerts/{alert.pk}/toggle/").status_code == 404
    assert client.post(f"/alerts/{alert.pk}/delete/").status_code == 404
    assert client.post(f"/notifications/{note.pk}/read/").status_code == 404
    order.refresh_from_db()
    alert.refresh_from_db()
    note.refresh_from_db()
    assert order.status == Order.Status.OPEN
    assert list(watchlist.coins.values_list("pk", flat=True)) == ["bitcoin"]
    assert Watchlist.objects.get(pk=watchlist.pk).name == "Alice's"
    assert alert.is_active
    assert note.read_at is None


def test_changes_are_posts_only(alice_client, alice_portfolio):
    assert alice_client.get(f"/portfolios/{alice_portfolio.pk}/orders/").status_code == 405
    assert alice_client.get("/notifications/read-all/").status_code == 405
    assert alice_client.get("/watchlists/watch/").status_code == 405


# --- portfolios and the order ticket ------------------------------------------------------------


def test_create_portfolio_and_errors_beside_fields(alice_client, alice_portfolio):
    created = alice_client.post("/portfolios/new/", {"name": "Swing", "starting_cash": "2500.50"})
    portfolio = Portfolio.objects.get(owner__email="alice@example.com", name="Swing")
    assert created.url == f"/portfolios/{portfolio.pk}/"
    assert portfolio.cash == Decimal("2500.50")
    duplicate = alice_client.post("/portfolios/new/", {"name": "Main", "starting_cash": "1"})
    assert duplicate.status_code == 400
    assert field_errors(duplicate, "name") == ["You already have a portfolio with this name."]
    bad = alice_client.post("/portfolios/new/", {"name": "X", "starting_cash": "-5"})
    assert bad.status_code == 400
    assert field_errors(bad, "starting_cash") == ["Ensure this value is greater than or equal to 0."]
    too_precise = alice_client.post("/portfolios/new/", {"name": "Y", "starting_cash": "1.0000000000000000001"})
    assert field_errors(too_precise, "starting_cash") == ["Ensure that there are no more than 18 decimal places."]
    listing = alice_client.get("/portfolios/").content.decode()
    assert listing.count("data-portfolio-id=") == 2
    assert "$10,000.00" in listing
    assert "$2,500.50" in listing


def test_preview_shows_the_exact_fee_and_cost(alice_client, alice_portfolio, settings):
    settings.PAPER_FEE_BPS = 10
    url = f"/portfolios/{alice_portfolio.pk}/orders/preview/"
    buy = alice_client.get(url, {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "2"})
    html = buy.content.decode()
    assert buy.status_code == 200
    assert "<html" not in html  # a fragment for htmx
    assert 'data-notional="200"' in html
    assert 'data-fee="0.2"' in html
    assert 'data-total="200.2"' in html
    assert 'data-cash-after="9799.8"' in html
    assert "$200.00" in html
    assert "$0.20" in html
    assert "$200.20" in html
    assert "$9,799.80" in html
    assert "Total cost" in html
    tiny = alice_client.get(url, {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "0.00001"})
    assert 'data-fee="0.000001"' in tiny.content.decode()
    assert "&lt; $0.01" in tiny.content.decode()  # cents, but a fee is never shown as $0.00
    limit = alice_client.get(
        url, {"side": "buy", "type": "limit", "coin": "bitcoin", "quantity": "3", "limit_price": "90"}
    )
    assert 'data-total="270.27"' in limit.content.decode()
    sell = alice_client.get(url, {"side": "sell", "type": "market", "coin": "bitcoin", "quantity": "1"})
    sold = sell.content.decode()
    assert "Proceeds" in sold
    assert 'data-total="99.9"' in sold
    assert "You have 0 BIT available to sell." in sold
    too_big = alice_client.get(url, {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "1000"})
    assert "Not enough cash" in too_big.content.decode()
    empty = alice_client.get(url, {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": ""})
    assert "Enter a quantity to see" in empty.content.decode()
    typo = alice_client.get(url, {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "two"})
    assert "Quantity: Enter a number." in typo.content.decode()


def test_a_refused_order_shows_beside_quantity_and_moves_nothing(alice_client, alice_portfolio):
    response = ticket(alice_portfolio, alice_client, quantity="1000")
    assert response.status_code == 400
    errors = field_errors(response, "quantity")
    assert len(errors) == 1
    assert errors[0] == "Not enough cash: this order needs $100,100.00 (fee included); $10,000.00 is available."
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal(10000)
    assert not Order.objects.exists()
    assert not Trade.objects.exists()
    html = response.content.decode()
    assert 'value="1000"' in html  # the ticket keeps what was typed
    oversell = ticket(alice_portfolio, alice_client, side="sell", quantity="1")
    assert oversell.status_code == 400
    assert field_errors(oversell, "quantity")[0].startswith("You cannot sell 1 BIT")


def test_limit_needs_a_price_beside_its_field(alice_client, alice_portfolio):
    response = ticket(alice_portfolio, alice_client, type="limit", limit_price="")
    assert response.status_code == 400
    assert field_errors(response, "limit_price") == ["A limit order needs a limit price."]
    zero = ticket(alice_portfolio, alice_client, quantity="0")
    assert field_errors(zero, "quantity") == ["Enter a quantity above 0."]


def test_market_buy_through_the_ticket(alice_client, alice_portfolio):
    response = ticket(alice_portfolio, alice_client, quantity="2", limit_price="999")  # ignored for market orders
    assert response.status_code == 302
    assert response.url == f"/portfolios/{alice_portfolio.pk}/"
    trade = Trade.objects.get()
    assert (trade.side, trade.quantity, trade.price, trade.fee) == ("buy", Decimal(2), Decimal(100), Decimal("0.2"))
    assert trade.order.limit_price is None
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("9799.8")
    page = alice_client.get(response.url).content.decode()
    assert "Bought 2 BIT at $100.00 (fee $0.20)." in page
    assert 'data-coin="bitcoin"' in page  # the holdings table
    assert "$200.20" in page or "$200.00" in page


def test_a_double_submit_places_one_order(alice_client, alice_portfolio):
    key = "0123456789abcdef0123456789abcdef"
    first = ticket(alice_portfolio, alice_client, idempotency_key=key)
    second = ticket(alice_portfolio, alice_client, idempotency_key=key)
    assert first.status_code == second.status_code == 302
    assert Trade.objects.count() == 1
    assert "already placed" in alice_client.get(second.url).content.decode()


def test_limit_order_then_cancel(alice_client, alice_portfolio):
    placed = ticket(alice_portfolio, alice_client, quantity="1", type="limit", limit_price="90")
    assert placed.status_code == 302
    order = Order.objects.get()
    assert order.status == Order.Status.OPEN
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.reserved_cash == Decimal("90.09")
    page = alice_client.get(f"/portfolios/{alice_portfolio.pk}/").content.decode()
    assert f'data-order-id="{order.pk}"' in page
    assert "Limit buy of 1 BIT at $90.00 placed" in page
    dashboard = alice_client.get("/dashboard/").content.decode()
    assert f'data-order-id="{order.pk}"' in dashboard
    cancelled = alice_client.post(f"/orders/{order.pk}/cancel/", {"next": f"/portfolios/{alice_portfolio.pk}/"})
    assert cancelled.url == f"/portfolios/{alice_portfolio.pk}/"
    order.refresh_from_db()
    alice_portfolio.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert alice_portfolio.reserved_cash == 0
    again = alice_client.post(f"/orders/{order.pk}/cancel/", follow=True)
    assert "only open orders can be cancelled" in again.content.decode()
    offsite = alice_client.post(f"/orders/{order.pk}/cancel/", {"next": "https://evil.example/"})
    assert offsite.url == f"/portfolios/{alice_portfolio.pk}/"


def test_deposit_and_withdraw(alice_client, alice_portfolio):
    url = f"/portfolios/{alice_portfolio.pk}/transfers/"
    assert alice_client.post(url, {"kind": "deposit", "amount": "500"}).status_code == 302
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal(10500)
    refused = alice_client.post(url, {"kind": "withdrawal", "amount": "20000"})
    assert refused.status_code == 400
    assert field_errors(refused, "amount") == ["You can withdraw at most $10,500.00 (cash not held by open orders)."]
    assert alice_client.post(url, {"kind": "withdrawal", "amount": "100.25"}).status_code == 302
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.cash == Decimal("10399.75")
    kinds = list(CashTransfer.objects.filter(portfolio=alice_portfolio).values_list("kind", flat=True))
    assert sorted(kinds) == ["deposit", "deposit", "withdrawal"]
    assert field_errors(alice_client.post(url, {"kind": "deposit", "amount": "0"}), "amount") == [
        "Enter an amount above 0."
    ]


def test_trade_link_opens_the_ticket_with_the_coin(alice_client, alice, btc):
    assert alice_client.get("/trade/bitcoin/").url == "/portfolios/"
    portfolio = services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal(100))
    response = alice_client.get("/trade/bitcoin/")
    assert response.url == f"/portfolios/{portfolio.pk}/?coin=bitcoin#ticket"
    page = alice_client.get(response.url).content.decode()
    assert '<option value="bitcoin" selected>' in page


# --- watchlists ---------------------------------------------------------------------------------


def test_watch_from_the_coin_page_creates_my_watchlist(alice_client, alice, btc):
    page = alice_client.get("/markets/bitcoin/").content.decode()
    assert 'data-testid="watch-form"' in page
    assert "☆ Watch" in page
    assert 'href="/trade/bitcoin/"' in page
    response = alice_client.post("/watchlists/watch/", {"coin": "bitcoin", "next": "/markets/bitcoin/"})
    assert response.url == "/markets/bitcoin/"
    watchlist = Watchlist.objects.get(owner=alice)
    assert watchlist.name == "My watchlist"
    assert list(watchlist.coins.values_list("pk", flat=True)) == ["bitcoin"]
    assert "★ Watching" in alice_client.get("/markets/bitcoin/").content.decode()
    set_price("ethereum", "10")
    other = services.save_watchlist(owner=alice, name="Alts", coin_ids=[])
    page = alice_client.get("/markets/ethereum/").content.decode()
    assert f'<option value="{other.pk}">Alts</option>' in page  # a choice once there are two
    alice_client.post("/watchlists/watch/", {"coin": "ethereum", "watchlist": other.pk})
    assert list(other.coins.values_list("pk", flat=True)) == ["ethereum"]
    assert alice_client.post("/watchlists/watch/", {"coin": "nope"}).status_code == 404


def test_watch_star_on_the_markets_table(client, alice, btc):
    set_price("ethereum", "10")
    anonymous = client.get("/markets/").content.decode()
    assert 'data-testid="watch"' not in anonymous
    assert "/trade/" not in anonymous
    log_in(client, alice)
    table = client.get("/markets/", HTTP_HX_REQUEST="true").content.decode()
    assert table.count('data-testid="watch"') == 2
    assert 'href="/trade/ethereum/"' in table
    star = client.post("/watchlists/watch/", {"coin": "ethereum", "next": "/markets/"}, HTTP_HX_REQUEST="true")
    assert star.status_code == 200
    assert 'data-testid="watched"' in star.content.decode()
    assert "<html" not in star.content.decode()
    again = client.post("/watchlists/watch/", {"coin": "bitcoin", "next": "/markets/?page=1"})
    assert again.url == "/markets/?page=1"
    watchlist = Watchlist.objects.get(owner=alice)  # the first one is reused
    assert sorted(watchlist.coins.values_list("pk", flat=True)) == ["bitcoin", "ethereum"]
    table = client.get("/markets/").content.decode()
    assert table.count('data-testid="watched"') == 2
    assert 'data-testid="watch"' not in table


def test_watchlists_create_rename_remove_delete(alice_client, alice, btc):
    assert alice_client.post("/watchlists/new/", {"name": "Majors"}).status_code == 302
    watchlist = Watchlist.objects.get(owner=alice)
    duplicate = alice_client.post("/watchlists/new/", {"name": "Majors"})
    assert duplicate.status_code == 400
    assert field_errors(duplicate, "name") == ["You already have a watchlist with this name."]
    alice_client.post("/watchlists/watch/", {"coin": "bitcoin", "watchlist": watchlist.pk})
    page = alice_client.get("/watchlists/").content.decode()
    assert 'data-coin="bitcoin"' in page
    assert "$100.00" in page
    services.save_watchlist(owner=alice, name="Other", coin_ids=[])
    clash = alice_client.post(f"/watchlists/{watchlist.pk}/rename/", {"name": "Other"})
    assert clash.status_code == 400
    assert field_errors(clash, "name") == ["You already have a watchlist with this name."]
    assert alice_client.post(f"/watchlists/{watchlist.pk}/rename/", {"name": "Big ones"}).status_code == 302
    watchlist.refresh_from_db()
    assert watchlist.name == "Big ones"
    assert list(watchlist.coins.values_list("pk", flat=True)) == ["bitcoin"]  # renaming keeps the coins
    alice_client.post(f"/watchlists/{watchlist.pk}/coins/bitcoin/remove/")
    assert not watchlist.coins.exists()
    alice_client.post(f"/watchlists/{watchlist.pk}/delete/", {"confirm": "yes"})
    assert not Watchlist.objects.filter(pk=watchlist.pk).exists()


# --- alerts and notifications ---------------------------------------------------------------------


def test_alert_with_a_bad_threshold_shows_a_field_error(alice_client, alice, btc):
    bad = alice_client.post("/alerts/new/", {"coin": "bitcoin", "condition": "price_above", "price": "-5"})
    assert bad.status_code == 400
    assert field_errors(bad, "price") == ["A price must be above 0."]
    not_a_number = alice_client.post("/alerts/new/", {"coin": "bitcoin", "condition": "price_below", "price": "x"})
    assert field_errors(not_a_number, "price") == ["Enter a number."]
    unknown = alice_client.post("/alerts/new/", {"coin": "nope", "condition": "price_below", "price": "1"})
    assert field_errors(unknown, "coin") == ["Select a valid choice. That choice is not one of the available choices."]
    assert not Alert.objects.exists()


def test_alert_create_toggle_delete(alice_client, alice, btc):
    created = alice_client.post(
        "/alerts/new/", {"coin": "bitcoin", "condition": "change_24h_below", "change": "-5", "notify_email": "on"}
    )
    assert created.url == "/alerts/"
    alert = Alert.objects.get(owner=alice)
    assert (alert.threshold, alert.notify_email, alert.is_active) == (Decimal(-5), True, True)
    Alert.objects.filter(pk=alert.pk).update(is_met=True, last_triggered_at=timezone.now())
    page = alice_client.get("/alerts/").content.decode()
    assert "triggered" in page
    assert "24h change below (%)" in page
    alice_client.post(f"/alerts/{alert.pk}/toggle/")
    alert.refresh_from_db()
    assert (alert.is_active, alert.is_met) == (False, False)
    assert "paused" in alice_client.get("/alerts/").content.decode()
    alice_client.post(f"/alerts/{alert.pk}/toggle/")
    alert.refresh_from_db()
    assert alert.is_active
    assert "armed" in alice_client.get("/alerts/").content.decode()
    alice_client.post(f"/alerts/{alert.pk}/delete/", {"confirm": "yes"})
    assert not Alert.objects.exists()


def test_notifications_bell_and_mark_read(alice_client, alice, bob):
    first = Notification.objects.create(user=alice, title="Bitcoin: price above 120", link="/markets/bitcoin/")
    Notification.objects.create(user=alice, title="Ethereum: price below 5")
    Notification.objects.create(user=bob, title="Not for alice")
    page = alice_client.get("/notifications/").content.decode()
    assert re.search(r'data-testid="unread-count">2<', page)
    assert "Not for alice" not in page
    alice_client.post(f"/notifications/{first.pk}/read/")
    first.refresh_from_db()
    assert first.read_at is not None
    assert re.search(r'data-testid="unread-count">1<', alice_client.get("/alerts/").content.decode())
    alice_client.post("/notifications/read-all/")
    assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
    assert Notification.objects.get(user=bob).read_at is None
    assert 'data-testid="unread-count"' not in alice_client.get("/portfolios/").content.decode()


def test_the_bell_costs_one_count_and_nothing_for_visitors(client, alice, django_assert_num_queries):
    with CaptureQueriesContext(connection) as visitor:
        client.get("/markets/")
    assert not [q for q in visitor.captured_queries if "portfolios_notification" in q["sql"]]
    log_in(client, alice)
    client.get("/portfolios/")  # warm: the device session is touched on the first request
    with django_assert_num_queries(4) as queries:  # the user, portfolios, holdings, the bell
        client.get("/portfolios/")
    bell = [q["sql"] for q in queries.captured_queries if "portfolios_notification" in q["sql"]]
    assert len(bell) == 1
    assert "COUNT(" in bell[0]


# --- dashboard ------------------------------------------------------------------------------------


def _fill(user, prefix: str, *, portfolios: int, coins: int, trades_per_coin: int, notes: int) -> None:
    """A busy desk: portfolios with holdings in many coins, trades, open orders, watchlists, history."""
    ids = [f"coin-{i:03}" for i in range(coins)]
    for i, coin_id in enumerate(ids):
        set_price(coin_id, str(10 + i), change=str(i % 7 - 3))
    today = timezone.now().date()
    for n in range(portfolios):
        portfolio = services.create_portfolio(owner=user, name=f"{prefix} book {n}", starting_cash=Decimal(1_000_000))
        for coin_id in ids:
            for _ in range(trades_per_coin):
                services.place_order(
                    user=user,
                    portfolio_id=portfolio.pk,
                    coin_id=coin_id,
                    side="buy",
                    type="market",
                    quantity=Decimal(1),
                )
            services.place_order(
                user=user,
                portfolio_id=portfolio.pk,
                coin_id=coin_id,
                side="buy",
                type="limit",
                quantity=Decimal(1),
                limit_price=Decimal(1),
            )
        for days_ago in range(1, 31):
            PortfolioSnapshot.objects.update_or_create(
                portfolio=portfolio,
                date=today - timedelta(days=days_ago),
                defaults={"cash": 0, "market_value": 0, "total_value": Decimal(1_000_000 - days_ago)},
            )
    services.save_watchlist(owner=user, name=f"{prefix} all", coin_ids=ids)
    services.save_watchlist(owner=user, name=f"{prefix} half", coin_ids=ids[: max(1, coins // 2)])
    Notification.objects.bulk_create(Notification(user=user, title=f"Alert {i}") for i in range(notes))


def test_dashboard_query_count_is_constant(client, alice, django_assert_max_num_queries):
    log_in(client, alice)
    _fill(alice, "Small", portfolios=1, coins=1, trades_per_coin=1, notes=1)
    client.get("/dashboard/")  # warm: the device-session touch and the market panels shared by everyone
    # 9: the day change reads the transfers since each portfolio's last close, one query for all of them
    with django_assert_max_num_queries(9) as small:
        assert client.get("/dashboard/").status_code == 200
    _fill(alice, "Large", portfolios=3, coins=12, trades_per_coin=2, notes=20)
    _fill(make_user("other@example.com"), "Other", portfolios=1, coins=2, trades_per_coin=1, notes=3)
    services.create_portfolio(owner=alice, name="Empty", starting_cash=Decimal(0))
    with django_assert_max_num_queries(9) as large:
        response = client.get("/dashboard/")
    assert len(large.captured_queries) == len(small.captured_queries)
    html = response.content.decode()
    assert html.count('data-order-id="') == 8  # the newest open orders, not all 37
    assert "Large all" in html
    assert "Large half" in html
    assert "Large book 2" in html
    assert "Other" not in html
    assert re.search(r'data-testid="unread-count">21<', html)  # the count came with the list: no extra query


def test_dashboard_totals_match_each_portfolio(alice_client, alice, alice_portfolio, btc):
    services.place_order(
        user=alice, portfolio_id=alice_portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=Decimal(3)
    )
    second = services.create_portfolio(owner=alice, name="Second", starting_cash=Decimal("1234.5"))
    CashTransfer.objects.filter(portfolio=second).update(created_at=timezone.now() - timedelta(days=2))
    PortfolioSnapshot.objects.create(
        portfolio=second,
        date=timezone.now().date() - timedelta(days=1),
        cash=0,
        market_value=0,
        total_value=Decimal("1200"),
    )
    set_price("bitcoin", "110")
    expected = sum(selectors.portfolio_valuation(p).total_value for p in Portfolio.objects.filter(owner=alice))
    html = alice_client.get("/dashboard/").content.decode()
    assert f'data-testid="total-value" data-value="{expected.normalize():f}"' in html
    assert 'data-testid="day-change" data-value="34.5"' in html  # only the portfolio with a close counts
    assert 'data-testid="top-holdings"' in html
    assert "Bitcoin" in html


def test_dashboard_series_sums_portfolios_by_day(alice_client, alice, btc):
    today = timezone.now().date()
    for name, cash, days_ago in [("One", 100, 2), ("Two", 50, 1)]:  # rebuilt from the transfers, no snapshot
        portfolio = services.create_portfolio(owner=alice, name=name, starting_cash=Decimal(cash))
        opened = timezone.now() - timedelta(days=days_ago)
        Portfolio.objects.filter(pk=portfolio.pk).update(created_at=opened)
        CashTransfer.objects.filter(portfolio=portfolio).update(created_at=opened)
    body = alice_client.get("/dashboard/series/?days=90").json()
    assert body["interval_s"] == 86400
    assert body["points"] == [
        {"time": f"{today - timedelta(days=2)}T00:00:00Z", "total_value": "100"},  # two not opened yet
        {"time": f"{today - timedelta(days=1)}T00:00:00Z", "total_value": "150"},
        {"time": f"{today}T00:00:00Z", "total_value": "150"},  # live: both at their cash
    ]
    assert alice_client.get("/dashboard/series/?days=5y").status_code == 400


def test_trades_page_filters_and_never_shows_others(client, alice, bob, alice_portfolio, bob_portfolio):
    from decimal import Decimal as D

    from portfolios import services as svc

    for portfolio, owner in ((alice_portfolio, alice), (bob_portfolio, bob)):
        svc.place_order(
            user=owner, portfolio_id=portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=D("2")
        )
        svc.place_order(
            user=owner, portfolio_id=portfolio.pk, coin_id="bitcoin", side="sell", type="market", quantity=D("1")
        )
    client.post("/login/", {"email": alice.email, "password": PASSWORD})
    page = client.get("/trades/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('<span class="side side-') == 2
    assert "Bob&#x27;s" not in html
    sells = client.get("/trades/?side=sell").content.decode()
    assert sells.count('<span class="side side-') == 1
    assert 'href="/api/v1/trades/?side=sell&amp;format=csv"' in sells
    bad = client.get("/trades/?executed_after=yesterday").content.decode()
    assert "Enter a valid date/time." in bad
