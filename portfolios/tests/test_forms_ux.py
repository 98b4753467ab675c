"""Forms on the paper-trading pages: numbers typed as the pages print them, one formatted error per field,
a preview that rounds money to cents and blocks the impossible order, trades found by symbol or name,
deletes that ask first, and an alert form with one clear input per kind of alert."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from conftest import PASSWORD
from portfolios import services
from portfolios.models import Alert, CashTransfer, Order, Portfolio, Trade, Watchlist

from .conftest import set_price

pytestmark = pytest.mark.django_db

FIELD_ERROR = re.compile(r'<p class="field-error" id="([^"]+)" data-field-error="([a-z_]+)">([^<]+)</p>')


def field_errors(response) -> list[tuple[str, str]]:
    return [(name, text) for _, name, text in FIELD_ERROR.findall(response.content.decode())]


def input_tag(html: str, name: str) -> str:
    match = re.search(rf'<input[^>]* name="{name}"[^>]*>', html)
    assert match, f"no input named {name}"
    return match.group(0)


@pytest.fixture
def alice_client(client, alice):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def bob_client(bob):
    client = Client()  # a browser of his own: alice_client may be signed in at the same time
    assert client.post("/login/", {"email": bob.email, "password": PASSWORD}).status_code == 302
    return client


def place(client, portfolio, **fields):
    body = {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "1", "limit_price": "", **fields}
    return client.post(f"/portfolios/{portfolio.pk}/orders/", body)


def transfer(client, portfolio, kind: str, amount: str):
    return client.post(f"/portfolios/{portfolio.pk}/transfers/", {"kind": kind, "amount": amount})


def preview(client, portfolio, **fields):
    query = {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "1", "limit_price": "", **fields}
    return client.get(f"/portfolios/{portfolio.pk}/orders/preview/", query, headers={"HX-Request": "true"})


# --- numbers as the pages print them --------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("10,000", Decimal("10000")),
        ("10,000.50", Decimal("10000.50")),
        ("$10,000.00", Decimal("10000")),
        (" 10000 ", Decimal("10000")),
        ("$ 1,234,567.125", Decimal("1234567.125")),
        ("1,000.", Decimal("1000")),
    ],
)
def test_a_deposit_accepts_what_the_page_prints(alice_client, alice_portfolio, typed, amount):
    response = transfer(alice_client, alice_portfolio, "deposit", typed)
    assert response.status_code == 302, field_errors(response)
    assert CashTransfer.objects.filter(portfolio=alice_portfolio, kind="deposit").latest("created_at").amount == amount


def test_a_portfolio_starts_with_the_cash_the_page_printed(alice_client, alice):
    response = alice_client.post("/portfolios/new/", {"name": "Printed", "starting_cash": "$10,000.00"})
    assert response.status_code == 302
    assert Portfolio.objects.get(owner=alice, name="Printed").cash == Decimal(10_000)


def test_a_quantity_takes_grouping_commas_but_no_currency_sign(alice_client, alice_portfolio):
    assert (
        alice_client.post(
            f"/portfolios/{alice_portfolio.pk}/transfers/", {"kind": "deposit", "amount": "1,000,000"}
        ).status_code
        == 302
    )
    assert place(alice_client, alice_portfolio, quantity="1,000").status_code == 302
    assert Trade.objects.get().quantity == Decimal(1000)
    refused = place(alice_client, alice_portfolio, quantity="$1")
    assert refused.status_code == 400
    assert [name for name, _ in field_errors(refused)] == ["quantity"]


@pytest.mark.parametrize("typed", ["1,00", "1.000,5", "1,0000", "10,00,000", ",5", "1,000.5,0", "1,,000"])
def test_an_ambiguous_comma_is_refused_with_a_clear_message(alice_client, alice_portfolio, typed):
    response = transfer(alice_client, alice_portfolio, "deposit", typed)
    assert response.status_code == 400
    assert field_errors(response) == [
        ("amount", "Use commas only between groups of three digits (10,000.50); the decimal separator is a point.")
    ]
    assert CashTransfer.objects.filter(portfolio=alice_portfolio).count() == 1  # the starting deposit


@pytest.mark.parametrize("typed", ["1e2000000", "NaN", "٣", "1" * 5000, "$$5", "5$", "0x10", "1_000", "$", "1 000"])
def test_hostile_or_odd_text_is_still_refused_beside_the_field(alice_client, alice_portfolio, typed):
    response = transfer(alice_client, alice_portfolio, "deposit", typed)
    assert response.status_code == 400
    assert [name for name, _ in field_errors(response)] == ["amount"]


def test_the_api_keeps_its_strict_number_format(alice_api, alice_portfolio):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    for typed in ["10,000", "$10"]:
        response = alice_api.post(url, {"kind": "deposit", "amount": typed}, format="json")
        assert response.status_code == 400
        assert list(response.json()["errors"]) == ["amount"]


# --- one error per field, formatted like the page -------------------------------------------------


def test_a_refused_order_shows_one_formatted_error_beside_the_quantity(alice_client, alice_portfolio):
    response = place(alice_client, alice_portfolio, quantity="1000")
    assert response.status_code == 400
    html = response.content.decode()
    assert field_errors(response) == [
        ("quantity", "Not enough cash: this order needs $100,100.00 (fee included); $10,000.00 is available.")
    ]
    assert html.count("Not enough cash") == 1  # not again in the preview or a summary
    assert 'class="alert alert-error"' not in html
    assert "needs 100100" not in html
    assert not Order.objects.exists()


def test_a_refused_sale_names_the_quantities_as_the_page_does(alice_client, alice_portfolio):
    assert place(alice_client, alice_portfolio, quantity="1.5").status_code == 302
    response = place(alice_client, alice_portfolio, side="sell", quantity="1,000")
    assert field_errors(response) == [
        (
            "quantity",
            "You cannot sell 1,000 BIT: you hold 1.5, 1.5 of it available (open sell orders hold the rest).",
        )
    ]
    assert response.content.decode().count("You cannot sell") == 1


def test_the_api_detail_keeps_plain_numbers(alice_api, alice_portfolio):
    body = {"portfolio": alice_portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1000"}
    problem = alice_api.post("/api/v1/orders/", body, format="json").json()
    assert problem["detail"] == "Not enough cash: this order needs 100100 (fee included); 10000 is available."
    assert problem["errors"] == {"quantity": [problem["detail"]]}


def test_a_refused_withdrawal_shows_one_formatted_error(alice_client, alice_portfolio):
    assert transfer(alice_client, alice_portfolio, "deposit", "500.5").status_code == 302
    response = transfer(alice_client, alice_portfolio, "withdrawal", "$20,000")
    assert response.status_code == 400
    assert field_errors(response) == [("amount", "You can withdraw at most $10,500.50 (cash not held by open orders).")]
    html = response.content.decode()
    assert html.count("You can withdraw at most") == 1
    assert 'class="alert alert-error"' not in html


def test_the_invalid_field_is_marked_and_linked_to_its_message(alice_client, alice_portfolio):
    response = transfer(alice_client, alice_portfolio, "withdrawal", "20000")
    html = response.content.decode()
    amount = input_tag(html, "amount")
    assert 'aria-invalid="true"' in amount
    described = re.search(r'aria-describedby="([^"]+)"', amount).group(1).split()
    (error_id,) = [id_ for id_, name, _ in FIELD_ERROR.findall(html) if name == "amount"]
    assert error_id in described
    assert html.count(f'id="{error_id}"') == 1
    assert "/static/js/forms.js" in html  # moves the focus to the first invalid field


def test_several_messages_for_one_field_share_one_description(alice_client, alice_portfolio):
    response = transfer(alice_client, alice_portfolio, "deposit", "0.0000000000000000001")
    assert response.status_code == 400
    html = response.content.decode()
    block = re.search(r'<div class="field-errors" id="id_amount_error">(.*?)</div>', html, re.DOTALL)
    assert block, "the messages are not grouped under the id the input names"
    messages = re.findall(r'data-field-error="amount">([^<]+)<', block.group(1))
    assert sorted(messages) == ["Ensure that there are no more than 18 decimal places.", "Enter an amount above 0."]
    assert html.count('data-field-error="amount"') == 2  # each once, nowhere else
    assert 'aria-describedby="id_amount_error"' in input_tag(html, "amount")


def test_a_help_text_is_linked_too(alice_client, alice_portfolio):
    html = alice_client.get(f"/portfolios/{alice_portfolio.pk}/").content.decode()
    limit = input_tag(html, "limit_price")
    described = re.search(r'aria-describedby="([^"]+)"', limit).group(1)
    assert f'id="{described}"' in html


# --- the preview ----------------------------------------------------------------------------------


def estimate_figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-testid="estimate-([a-z-]+)">([^<]+)<', html))


def test_the_preview_rounds_money_to_cents_and_keeps_tiny_unit_prices(alice_client, alice_portfolio):
    set_price("shiba-inu", "0.00001234")
    html = preview(alice_client, alice_portfolio, coin="shiba-inu", quantity="1,234,567").content.decode()
    # notional 15.23455678, fee 0.01523455678 rounded up to the stored precision, total 15.25...
    assert estimate_figures(html) == {
        "notional": "$15.23",
        "fee": "$0.02",
        "total": "$15.25",
        "cash-after": "$9,984.75",
    }
    assert "<dd>$0.00001234</dd>" in html  # a unit price keeps its significant digits
    assert 'data-notional="15.23455678"' in html  # exact figures stay in the data attributes


def test_a_fee_below_a_cent_is_never_shown_as_nothing(alice_client, alice_portfolio):
    html = preview(alice_client, alice_portfolio, quantity="0.00001").content.decode()
    figures = estimate_figures(html)
    assert figures["fee"] == "&lt; $0.01"
    assert figures["notional"] == "&lt; $0.01"
    assert 'data-fee="0.000001"' in html


def place_button(html: str) -> str:
    match = re.search(r'<button[^>]*data-testid="place-order"[^>]*>', html)
    assert match, "no place button"
    return match.group(0)


def test_an_impossible_order_disables_the_place_button_with_the_reason(alice_client, alice_portfolio):
    blocked = preview(alice_client, alice_portfolio, quantity="1000").content.decode()
    button = place_button(blocked)
    assert " disabled" in button
    assert 'aria-describedby="ticket-blocked"' in button
    reason = re.search(r'id="ticket-blocked"[^>]*>([^<]+)<', blocked).group(1)
    assert reason == "Not enough cash: this order needs $100,100.00 (fee included); $10,000.00 is available."
    assert blocked.count("Not enough cash") == 1
    assert 'hx-swap-oob="true"' in blocked  # the button sits outside the preview: swapped beside it

    possible = preview(alice_client, alice_portfolio, quantity="1").content.decode()
    assert " disabled" not in place_button(possible)
    assert "ticket-blocked" not in possible

    typo = preview(alice_client, alice_portfolio, quantity="two").content.decode()
    assert " disabled" in place_button(typo)
    assert "Quantity: Enter a number." in typo


def test_the_full_page_never_disables_the_button_itself(alice_client, alice_portfolio):
    """Without JavaScript nothing could enable it again: the page marks it, the script disables it."""
    response = place(alice_client, alice_portfolio, quantity="1000")
    html = response.content.decode()
    button = place_button(html)
    assert " disabled" not in button
    assert 'data-blocked="true"' in html
    assert "/static/js/ticket.js" in html
    fresh = alice_client.get(f"/portfolios/{alice_portfolio.pk}/").content.decode()
    assert 'data-blocked="true"' not in fresh


def test_a_stale_price_blocks_a_market_order_not_a_limit(alice_client, alice_portfolio, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.PAPER_ALLOW_STALE_PRICES = False
    set_price("bitcoin", "100", updated=timezone.now() - timedelta(days=1))
    market = preview(alice_client, alice_portfolio).content.decode()
    assert " disabled" in place_button(market)
    assert "The last price is stale" in market
    limit = preview(alice_client, alice_portfolio, type="limit", limit_price="90").content.decode()
    assert " disabled" not in place_button(limit)


# --- trades: by symbol or name --------------------------------------------------------------------


@pytest.fixture
def two_trades(alice_client, alice, alice_portfolio):
    quote = set_price("ethereum", "10")
    quote.coin.symbol, quote.coin.name = "eth", "Ethereum"
    quote.coin.save()
    assert place(alice_client, alice_portfolio, quantity="1").status_code == 302
    assert place(alice_client, alice_portfolio, coin="ethereum", quantity="2").status_code == 302
    return Trade.objects.get(coin_id="bitcoin"), Trade.objects.get(coin_id="ethereum")


def trade_rows(response) -> list[str]:
    return re.findall(r'<tr data-trade-id="(\d+)"', response.content.decode())


@pytest.mark.parametrize("search", ["bit", "BIT", "Bitcoin", "bitco", "  bitcoin "])
def test_trades_are_found_by_symbol_or_name(alice_client, two_trades, search):
    bitcoin, _ = two_trades
    response = alice_client.get("/trades/", {"search": search})
    assert response.status_code == 200
    assert trade_rows(response) == [str(bitcoin.pk)]


def test_trade_search_combines_with_the_other_filters(alice_client, two_trades):
    _, ether = two_trades
    assert trade_rows(alice_client.get("/trades/", {"search": "eth", "side": "buy"})) == [str(ether.pk)]
    assert trade_rows(alice_client.get("/trades/", {"search": "eth", "side": "sell"})) == []
    assert trade_rows(alice_client.get("/trades/", {"search": "dogecoin"})) == []
    page = alice_client.get("/trades/", {"search": "eth"}).content.decode()
    assert 'name="search" value="eth"' in page
    assert "search=eth" in re.search(r'href="([^"]+)" data-testid="trades-csv"', page).group(1)


def test_trade_search_never_shows_another_users_trades(bob_client, two_trades):
    assert trade_rows(bob_client.get("/trades/", {"search": "bit"})) == []


def test_the_api_filters_trades_by_symbol_and_keeps_coin(alice_api, two_trades):
    bitcoin, ether = two_trades
    by_symbol = alice_api.get("/api/v1/trades/", {"symbol": "ETH"}).json()
    assert [row["id"] for row in by_symbol["results"]] == [ether.pk]
    by_coin = alice_api.get("/api/v1/trades/", {"coin": "bitcoin"}).json()
    assert [row["id"] for row in by_coin["results"]] == [bitcoin.pk]


# --- deletes ask first ----------------------------------------------------------------------------


def test_deleting_a_watchlist_asks_first_without_javascript(alice_client, alice):
    watchlist = services.save_watchlist(owner=alice, name="Majors", coin_ids=[])
    url = f"/watchlists/{watchlist.pk}/delete/"
    asked = alice_client.post(url)
    assert asked.status_code == 200
    html = asked.content.decode()
    assert "<html" in html
    assert "Delete the watchlist “Majors”?" in html
    assert re.search(rf'<form method="post" action="{url}"[^>]*>.*name="confirm" value="yes"', html, re.DOTALL)
    assert Watchlist.objects.filter(pk=watchlist.pk).exists()
    assert alice_client.get(url).status_code == 200  # a link to the confirmation works too
    deleted = alice_client.post(url, {"confirm": "yes"})
    assert deleted.status_code == 302
    assert deleted.url == "/watchlists/"
    assert not Watchlist.objects.filter(pk=watchlist.pk).exists()


def test_deleting_a_watchlist_with_htmx_asks_inline(alice_client, alice):
    watchlist = services.save_watchlist(owner=alice, name="Majors", coin_ids=[])
    asked = alice_client.post(f"/watchlists/{watchlist.pk}/delete/", headers={"HX-Request": "true"})
    html = asked.content.decode()
    assert asked.status_code == 200
    assert "<html" not in html
    assert 'data-testid="confirm-delete"' in html
    assert Watchlist.objects.filter(pk=watchlist.pk).exists()
    page = alice_client.get("/watchlists/").content.decode()
    assert re.search(r'<form method="post" action="/watchlists/\d+/delete/"[^>]*hx-post=', page)


def test_deleting_an_alert_asks_first(alice_client, alice, btc):
    alert = services.save_alert(owner=alice, coin=btc.coin, condition="price_above", threshold=Decimal(120))
    url = f"/alerts/{alert.pk}/delete/"
    asked = alice_client.post(url)
    assert asked.status_code == 200
    assert "Delete the alert “Bitcoin price above $120.00”?" in asked.content.decode()
    assert Alert.objects.filter(pk=alert.pk).exists()
    inline = alice_client.post(url, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in inline
    assert 'name="confirm" value="yes"' in inline
    assert alice_client.post(url, {"confirm": "yes"}).url == "/alerts/"
    assert not Alert.objects.filter(pk=alert.pk).exists()


def test_another_users_delete_confirmation_is_404(bob_client, alice, btc):
    watchlist = services.save_watchlist(owner=alice, name="Majors", coin_ids=[])
    alert = services.save_alert(owner=alice, coin=btc.coin, condition="price_above", threshold=Decimal(120))
    for url in [f"/watchlists/{watchlist.pk}/delete/", f"/alerts/{alert.pk}/delete/"]:
        assert bob_client.get(url).status_code == 404
        assert bob_client.post(url, {"confirm": "yes"}).status_code == 404
    assert Watchlist.objects.filter(pk=watchlist.pk).exists()
    assert Alert.objects.filter(pk=alert.pk).exists()


# --- the alert form -------------------------------------------------------------------------------


def create_alert(client, **fields):
    return client.post("/alerts/new/", {"coin": "bitcoin", **fields})


def test_the_alert_form_has_one_input_per_unit(alice_client, btc):
    html = alice_client.get("/alerts/").content.decode()
    assert 'name="threshold"' not in html
    price, change = input_tag(html, "price"), input_tag(html, "change")
    assert 'inputmode="decimal"' in price
    assert 'inputmode="decimal"' in change
    assert re.search(r'data-unit-for="id_price"[^>]*>USD<', html)
    assert re.search(r'data-unit-for="id_change"[^>]*>%<', html)
    assert 'data-alert-kind="price"' in html
    assert 'data-alert-kind="change"' in html


def test_a_price_alert_reads_the_price_input(alice_client, alice, btc):
    response = create_alert(alice_client, condition="price_below", price="$1,234.50", change="7")
    assert response.status_code == 302
    alert = Alert.objects.get(owner=alice)
    assert (alert.condition, alert.threshold) == ("price_below", Decimal("1234.50"))


def test_a_change_alert_reads_the_percent_input(alice_client, alice, btc):
    response = create_alert(alice_client, condition="change_24h_below", price="999", change="-5 %")
    assert response.status_code == 302
    alert = Alert.objects.get(owner=alice)
    assert (alert.condition, alert.threshold) == ("change_24h_below", Decimal(-5))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"condition": "price_above", "change": "5"}, [("price", "Enter the price in USD that sets the alert off.")]),
        ({"condition": "change_24h_above", "price": "5"}, [("change", "Enter the 24 h change in % that sets it off.")]),
        ({"condition": "price_above", "price": "-5"}, [("price", "A price must be above 0.")]),
        ({"condition": "price_above", "price": "5%"}, [("price", "Enter a number.")]),
        (
            {"condition": "change_24h_below", "change": "-101"},
            [("change", "A 24 h change cannot be below -100 % (the whole price).")],
        ),
        (
            {"condition": "change_24h_below", "change": "0.000000001"},
            [("change", "A 24 h change has at most 8 decimal places.")],
        ),
    ],
)
def test_alert_errors_name_the_field_they_concern(alice_client, btc, fields, expected):
    response = create_alert(alice_client, **fields)
    assert response.status_code == 400
    assert field_errors(response) == expected
    assert not Alert.objects.exists()
