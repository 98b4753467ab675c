"""Hostile input on every portfolios endpoint and form: a clear 4xx problem (API) or a message beside the field."""

import json
import re
from decimal import Decimal

import pytest

from portfolios import services
from portfolios.models import Alert, CashTransfer, Notification, Order, Portfolio, Watchlist

from .test_pages import log_in

pytestmark = pytest.mark.django_db

HUGE_ID = 2**63
NUMBERS = [
    "0",
    "-1",
    "1e-19",
    "0.0000000000000000001",  # 19 decimal places
    str(10**20),
    "9" * 38,
    "1e400",
    "NaN",
    "Infinity",
    "",
    "12abc",
    True,
    [],
    {},
]
IDS = [HUGE_ID, -1, 0, "abc", "1.5", [], {}, True, None]


def _problem(response, status: int = 400, *, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    if field is not None:
        named = [name for name in body["errors"] if name == field or name.startswith(f"{field}.")]  # coins.0
        assert named, body
        assert all(isinstance(message, str) and message for name in named for message in body["errors"][name])
    return body


# --- API: every write refuses odd bodies -------------------------------------------------------------


def _writes(portfolio: Portfolio, alert: Alert, watchlist: Watchlist) -> list[tuple[str, str]]:
    return [
        ("post", "/api/v1/portfolios/"),
        ("patch", f"/api/v1/portfolios/{portfolio.pk}/"),
        ("post", f"/api/v1/portfolios/{portfolio.pk}/transfers/"),
        ("post", "/api/v1/orders/"),
        ("post", "/api/v1/alerts/"),
        ("patch", f"/api/v1/alerts/{alert.pk}/"),
        ("post", "/api/v1/watchlists/"),
        ("patch", f"/api/v1/watchlists/{watchlist.pk}/"),
    ]


@pytest.fixture
def alice_alert(alice, btc) -> Alert:
    return services.save_alert(owner=alice, coin=btc.coin, condition="price_above", threshold=Decimal(120))


@pytest.fixture
def alice_watchlist(alice, btc) -> Watchlist:
    return services.save_watchlist(owner=alice, name="Majors", coin_ids=["bitcoin"])


@pytest.mark.parametrize(
    "body", [[], [{"name": "x"}], "text", 42, None], ids=["list", "list-of-objects", "str", "int", "null"]
)
def test_a_body_that_is_not_an_object_is_a_400_everywhere(
    alice_api, alice_portfolio, alice_alert, alice_watchlist, body
):
    for method, url in _writes(alice_portfolio, alice_alert, alice_watchlist):
        response = alice_api.generic(method.upper(), url, json.dumps(body), content_type="application/json")
        _problem(response)


def test_an_empty_body_names_the_required_fields(alice_api, alice_portfolio):
    for url, fields in [
        ("/api/v1/portfolios/", {"name", "starting_cash"}),
        (f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/", {"kind", "amount"}),
        ("/api/v1/orders/", {"portfolio", "coin", "side", "quantity"}),
        ("/api/v1/alerts/", {"coin", "condition", "threshold"}),
        ("/api/v1/watchlists/", {"name"}),
    ]:
        body = _problem(alice_api.post(url, {}, format="json"))
        assert fields <= set(body["errors"]), (url, body["errors"])


def test_malformed_json_is_a_400(alice_api):
    response = alice_api.generic("POST", "/api/v1/orders/", "{not json", content_type="application/json")
    _problem(response)


@pytest.mark.parametrize("value", NUMBERS, ids=repr)
def test_odd_order_quantities_and_prices_are_400(alice_api, alice_portfolio, value):
    base = {"portfolio": alice_portfolio.pk, "coin": "bitcoin", "side": "buy"}
    quantity = _problem(alice_api.post("/api/v1/orders/", {**base, "type": "market", "quantity": value}, format="json"))
    assert "quantity" in quantity["errors"]
    limit = {**base, "type": "limit", "quantity": "1", "limit_price": value}
    assert "limit_price" in _problem(alice_api.post("/api/v1/orders/", limit, format="json"))["errors"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", NUMBERS, ids=repr)
def test_odd_transfer_amounts_are_400(alice_api, alice_portfolio, value):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    _problem(alice_api.post(url, {"kind": "deposit", "amount": value}, format="json"), field="amount")
    assert CashTransfer.objects.count() == 1  # the starting deposit only


@pytest.mark.parametrize("value", [v for v in NUMBERS if v != "0"], ids=repr)
def test_odd_starting_cash_is_400(alice_api, value):
    body = {"name": "Odd", "starting_cash": value}
    _problem(alice_api.post("/api/v1/portfolios/", body, format="json"), field="starting_cash")
    assert not Portfolio.objects.filter(name="Odd").exists()


@pytest.mark.parametrize("value", [v for v in NUMBERS if v not in ("0", "-1")], ids=repr)
def test_odd_alert_thresholds_are_400(alice_api, btc, value):
    body = {"coin": "bitcoin", "condition": "price_above", "threshold": value}
    _problem(alice_api.post("/api/v1/alerts/", body, format="json"), field="threshold")
    assert not Alert.objects.exists()


@pytest.mark.parametrize("portfolio", IDS, ids=repr)
def test_odd_portfolio_ids_in_an_order_are_400(alice_api, btc, portfolio):
    body = {"portfolio": portfolio, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1"}
    _problem(alice_api.post("/api/v1/orders/", body, format="json"), field="portfolio")


def test_another_users_portfolio_in_an_order_is_refused_as_unknown(alice_api, bob_portfolio):
    body = {"portfolio": bob_portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1"}
    response = alice_api.post("/api/v1/orders/", body, format="json")
    assert response.status_code in (400, 404)
    _problem(response, response.status_code)
    assert not Order.objects.exists()


@pytest.mark.parametrize("coin", ["no-such-coin", "", "x" * 500, 42, [], {}, None], ids=repr)
def test_an_unknown_coin_is_a_400(alice_api, alice_portfolio, coin):
    order = {"portfolio": alice_portfolio.pk, "coin": coin, "side": "buy", "type": "market", "quantity": "1"}
    _problem(alice_api.post("/api/v1/orders/", order, format="json"), field="coin")
    alert = {"coin": coin, "condition": "price_above", "threshold": "1"}
    _problem(alice_api.post("/api/v1/alerts/", alert, format="json"), field="coin")


@pytest.mark.parametrize("coins", [["no-such-coin"], "bitcoin", [42], [[]], [{}], ["bitcoin"] * 1000], ids=repr)
def test_odd_watchlist_coins_are_400(alice_api, btc, coins):
    _problem(alice_api.post("/api/v1/watchlists/", {"name": "Odd", "coins": coins}, format="json"), field="coins")
    assert not Watchlist.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, [], {}, None, "\x00"], ids=repr)
def test_odd_names_are_400(alice_api, alice_portfolio, name):
    _problem(alice_api.post("/api/v1/portfolios/", {"name": name, "starting_cash": "1"}, format="json"), field="name")
    rename = alice_api.patch(f"/api/v1/portfolios/{alice_portfolio.pk}/", {"name": name}, format="json")
    _problem(rename, field="name")
    _problem(alice_api.post("/api/v1/watchlists/", {"name": name, "coins": []}, format="json"), field="name")
    alice_portfolio.refresh_from_db()
    assert alice_portfolio.name == "Main"


@pytest.mark.parametrize("value", ["sideways", "", 1, [], None], ids=repr)
def test_odd_choices_are_400(alice_api, alice_portfolio, value):
    base = {"portfolio": alice_portfolio.pk, "coin": "bitcoin", "side": "buy", "type": "market", "quantity": "1"}
    for name in ("side", "type"):
        _problem(alice_api.post("/api/v1/orders/", {**base, name: value}, format="json"), field=name)
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    _problem(alice_api.post(url, {"kind": value, "amount": "1"}, format="json"), field="kind")
    alert = {"coin": "bitcoin", "condition": value, "threshold": "1"}
    _problem(alice_api.post("/api/v1/alerts/", alert, format="json"), field="condition")


@pytest.mark.parametrize("object_id", [HUGE_ID, 10**30, -1, 0, "abc", "1.5"], ids=repr)
@pytest.mark.parametrize(
    "path",
    [
        "portfolios/{}/",
        "portfolios/{}/holdings/",
        "portfolios/{}/summary/",
        "portfolios/{}/performance/",
        "portfolios/{}/risk/",
        "orders/{}/",
        "alerts/{}/",
        "watchlists/{}/",
        "notifications/{}/",
    ],
)
def test_odd_ids_in_the_path_are_404(alice_api, alice_portfolio, path, object_id):
    _problem(alice_api.get(f"/api/v1/{path.format(object_id)}"), 404)


@pytest.mark.parametrize("object_id", [HUGE_ID, "abc"], ids=repr)
@pytest.mark.parametrize("path", ["portfolios/{}/transfers/", "orders/{}/cancel/", "notifications/{}/read/"])
def test_odd_ids_in_actions_are_404(alice_api, alice_portfolio, path, object_id):
    _problem(
        alice_api.post(f"/api/v1/{path.format(object_id)}", {"kind": "deposit", "amount": "1"}, format="json"), 404
    )


@pytest.mark.parametrize(
    "query", ["page=0", "page=-1", f"page={HUGE_ID}", "page=abc", "page_size=0", f"page_size={HUGE_ID}"]
)
def test_odd_pagination_is_a_4xx_or_clamped(alice_api, alice_portfolio, query):
    for path in ("portfolios", "orders", "trades", "alerts", "watchlists", "notifications"):
        response = alice_api.get(f"/api/v1/{path}/?{query}")
        if response.status_code != 200:
            _problem(response, 404)


@pytest.mark.parametrize(
    "query",
    [f"portfolio={HUGE_ID}", "portfolio=abc", "status=nope", "side=up", "coin=" + "x" * 500, "portfolio=-1"],
)
def test_odd_list_filters_are_a_400_or_empty(alice_api, alice_portfolio, query):
    for path in ("orders", "trades"):
        response = alice_api.get(f"/api/v1/{path}/?{query}")
        if response.status_code == 200:
            assert response.json()["count"] == 0
        else:
            _problem(response)


@pytest.mark.parametrize("days", ["0", "-1", "abc", str(HUGE_ID), "1e3", ""])
def test_odd_performance_ranges_are_400(alice_api, alice_portfolio, days):
    _problem(alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/performance/?days={days}"), field="days")


def test_another_users_notification_is_404(alice_api, bob):
    note = Notification.objects.create(user=bob, title="Bob's")
    _problem(alice_api.post(f"/api/v1/notifications/{note.pk}/read/"), 404)
    note.refresh_from_db()
    assert note.read_at is None


# --- alerts: 24 h change thresholds fit the PERCENT column ------------------------------------------


@pytest.mark.parametrize(
    "threshold",
    ["0.000000001", "-100.00000001", "-101", "-1000", str(10**16), "9" * 17],
    ids=repr,
)
@pytest.mark.parametrize("condition", ["change_24h_above", "change_24h_below"])
def test_a_change_threshold_beyond_a_percentage_is_refused_at_creation(alice_api, btc, condition, threshold):
    body = {"coin": "bitcoin", "condition": condition, "threshold": threshold}
    _problem(alice_api.post("/api/v1/alerts/", body, format="json"), field="threshold")
    assert not Alert.objects.exists()


@pytest.mark.parametrize("threshold", ["-100", "-99.99999999", "0", "12.12345678", "999999999999999.99999999"])
def test_a_change_threshold_within_a_percentage_is_taken(alice_api, btc, threshold):
    body = {"coin": "bitcoin", "condition": "change_24h_above", "threshold": threshold}
    response = alice_api.post("/api/v1/alerts/", body, format="json")
    assert response.status_code == 201, response.content
    assert Alert.objects.get().threshold == Decimal(threshold)


def test_switching_a_price_alert_to_a_change_keeps_the_threshold_in_bounds(alice_api, alice_alert):
    services.save_alert(owner=alice_alert.owner, alert=alice_alert, threshold=Decimal("120.123456789"))
    response = alice_api.patch(f"/api/v1/alerts/{alice_alert.pk}/", {"condition": "change_24h_above"}, format="json")
    _problem(response, field="threshold")
    alice_alert.refresh_from_db()
    assert alice_alert.condition == "price_above"


# --- pages: a message beside the field ---------------------------------------------------------------


def _field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{name}">([^<]+)<', response.content.decode())


@pytest.fixture
def alice_client(client, alice):
    log_in(client, alice)
    return client


PAGE_NUMBERS = ["0", "-1", "1e-19", "0.0000000000000000001", str(10**20), "9" * 38, "1e400", "NaN", "abc", ""]


@pytest.mark.parametrize("value", PAGE_NUMBERS, ids=repr)
def test_odd_ticket_quantities_are_shown_beside_the_field(alice_client, alice_portfolio, value):
    body = {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": value, "limit_price": ""}
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/orders/", body)
    assert response.status_code == 400
    assert _field_errors(response, "quantity")
    assert not Order.objects.exists()


@pytest.mark.parametrize("value", PAGE_NUMBERS, ids=repr)
def test_odd_ticket_limit_prices_are_shown_beside_the_field(alice_client, alice_portfolio, value):
    body = {"side": "buy", "type": "limit", "coin": "bitcoin", "quantity": "1", "limit_price": value}
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/orders/", body)
    assert response.status_code == 400
    assert _field_errors(response, "limit_price")


@pytest.mark.parametrize("value", PAGE_NUMBERS, ids=repr)
def test_odd_transfer_amounts_are_shown_beside_the_field(alice_client, alice_portfolio, value):
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/transfers/", {"kind": "deposit", "amount": value})
    assert response.status_code == 400
    assert _field_errors(response, "amount")
    assert CashTransfer.objects.count() == 1


@pytest.mark.parametrize("value", [v for v in PAGE_NUMBERS if v != "0"], ids=repr)
def test_odd_starting_cash_is_shown_beside_the_field(alice_client, value):
    response = alice_client.post("/portfolios/new/", {"name": "Odd", "starting_cash": value})
    assert response.status_code == 400
    assert _field_errors(response, "starting_cash")


@pytest.mark.parametrize("value", [v for v in PAGE_NUMBERS if v not in ("0", "-1")], ids=repr)
def test_odd_alert_thresholds_are_shown_beside_the_field(alice_client, btc, value):
    response = alice_client.post("/alerts/new/", {"coin": "bitcoin", "condition": "price_above", "price": value})
    assert response.status_code == 400
    assert _field_errors(response, "price")
    assert not Alert.objects.exists()


@pytest.mark.parametrize("threshold", ["0.000000001", "-101", str(10**16)])
def test_a_change_threshold_beyond_a_percentage_is_shown_beside_the_field(alice_client, btc, threshold):
    body = {"coin": "bitcoin", "condition": "change_24h_below", "change": threshold}
    response = alice_client.post("/alerts/new/", body)
    assert response.status_code == 400
    assert _field_errors(response, "change")
    assert not Alert.objects.exists()


@pytest.mark.parametrize("coin", ["no-such-coin", "", "x" * 500])
def test_an_unknown_coin_is_shown_beside_the_field(alice_client, alice_portfolio, coin):
    body = {"side": "buy", "type": "market", "coin": coin, "quantity": "1", "limit_price": ""}
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/orders/", body)
    assert response.status_code == 400
    assert _field_errors(response, "coin")
    alert = alice_client.post("/alerts/new/", {"coin": coin, "condition": "price_above", "threshold": "1"})
    assert alert.status_code == 400
    assert _field_errors(alert, "coin")


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_odd_names_are_shown_beside_the_field(alice_client, name):
    response = alice_client.post("/portfolios/new/", {"name": name, "starting_cash": "1"})
    assert response.status_code == 400
    assert _field_errors(response, "name")
    watchlist = alice_client.post("/watchlists/new/", {"name": name})
    assert watchlist.status_code == 400
    assert _field_errors(watchlist, "name")


@pytest.mark.parametrize("object_id", [HUGE_ID, 10**30])
@pytest.mark.parametrize(
    "path",
    [
        "/portfolios/{}/",
        "/portfolios/{}/orders/",
        "/portfolios/{}/transfers/",
        "/alerts/{}/toggle/",
        "/alerts/{}/delete/",
        "/watchlists/{}/rename/",
        "/watchlists/{}/delete/",
        "/notifications/{}/read/",
    ],
)
def test_odd_ids_in_page_paths_are_404(alice_client, alice_portfolio, path, object_id):
    url = path.format(object_id)
    response = alice_client.get(url) if path == "/portfolios/{}/" else alice_client.post(url, {})
    assert response.status_code == 404


@pytest.mark.parametrize("watchlist", [str(HUGE_ID), "-1", "abc", "1e400"])
def test_odd_watchlist_ids_when_watching_a_coin_are_a_4xx(alice_client, btc, watchlist):
    response = alice_client.post("/watchlists/watch/", {"coin": "bitcoin", "watchlist": watchlist})
    assert response.status_code in (302, 400, 404)
    assert not Watchlist.objects.filter(coins__id="bitcoin").exclude(owner__email="alice@example.com").exists()


@pytest.mark.parametrize(
    ("name", "value"),
    [("quantity", "1e400"), ("quantity", "-1"), ("quantity", str(10**20)), ("side", "up"), ("type", "moon")],
)
def test_odd_ticket_previews_are_a_4xx_never_a_500(alice_client, alice_portfolio, name, value):
    body = {"side": "buy", "type": "market", "coin": "bitcoin", "quantity": "1", "limit_price": "", name: value}
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/orders/preview/", body)
    assert 200 <= response.status_code < 500
    ticket = alice_client.post(f"/portfolios/{alice_portfolio.pk}/orders/", body)
    assert ticket.status_code == 400
    assert _field_errors(ticket, name)


@pytest.mark.parametrize("kind", ["", "gift", "DEPOSIT"])
def test_odd_transfer_kinds_are_shown_beside_the_field(alice_client, alice_portfolio, kind):
    response = alice_client.post(f"/portfolios/{alice_portfolio.pk}/transfers/", {"kind": kind, "amount": "1"})
    assert response.status_code == 400
    assert _field_errors(response, "kind")
