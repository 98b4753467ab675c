"""Two users on every endpoint: the other's objects are 404, never in lists or filters, never writable."""

from decimal import Decimal

import pytest

from portfolios import services
from portfolios.models import Alert, Notification, Order, Portfolio, Watchlist

from .conftest import order

pytestmark = pytest.mark.django_db


@pytest.fixture
def alices_things(alice, alice_api, alice_portfolio):
    placed = order(alice_api, alice_portfolio, "buy", "1", type="limit", limit_price="50").json()
    order(alice_api, alice_portfolio, "buy", "1")
    watchlist = services.save_watchlist(owner=alice, name="Majors", coin_ids=["bitcoin"])
    alert = Alert.objects.create(owner=alice, coin_id="bitcoin", condition="price_above", threshold=Decimal(1))
    notification = Notification.objects.create(user=alice, title="hello")
    return {"order": placed["id"], "watchlist": watchlist.pk, "alert": alert.pk, "notification": notification.pk}


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/portfolios/{portfolio}/",
        "/api/v1/portfolios/{portfolio}/holdings/",
        "/api/v1/portfolios/{portfolio}/summary/",
        "/api/v1/portfolios/{portfolio}/performance/",
        "/api/v1/portfolios/{portfolio}/risk/",
        "/api/v1/orders/{order}/",
        "/api/v1/watchlists/{watchlist}/",
        "/api/v1/alerts/{alert}/",
    ],
)
def test_bob_gets_404_for_alices_objects(bob_api, alice_portfolio, alices_things, url):
    response = bob_api.get(url.format(portfolio=alice_portfolio.pk, **alices_things))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_bob_cannot_change_alices_objects(bob_api, alice_portfolio, alices_things):
    ids = {"portfolio": alice_portfolio.pk, **alices_things}
    assert bob_api.patch(f"/api/v1/portfolios/{ids['portfolio']}/", {"name": "x"}, format="json").status_code == 404
    assert bob_api.delete(f"/api/v1/portfolios/{ids['portfolio']}/").status_code == 404
    assert (
        bob_api.post(
            f"/api/v1/portfolios/{ids['portfolio']}/transfers/", {"kind": "withdrawal", "amount": "1"}, format="json"
        ).status_code
        == 404
    )
    assert bob_api.post(f"/api/v1/orders/{ids['order']}/cancel/").status_code == 404
    assert bob_api.delete(f"/api/v1/watchlists/{ids['watchlist']}/").status_code == 404
    assert bob_api.patch(f"/api/v1/alerts/{ids['alert']}/", {"threshold": "5"}, format="json").status_code == 404
    assert bob_api.post(f"/api/v1/notifications/{ids['notification']}/read/").status_code == 404
    assert Order.objects.get(pk=ids["order"]).status == "open"
    assert Portfolio.objects.get(pk=ids["portfolio"]).name == "Main"
    assert Watchlist.objects.filter(pk=ids["watchlist"]).exists()
    assert Alert.objects.get(pk=ids["alert"]).threshold == Decimal(1)
    assert Notification.objects.get(pk=ids["notification"]).read_at is None


def test_bob_cannot_trade_in_alices_portfolio(bob_api, alice_portfolio, bob_portfolio):
    response = order(bob_api, alice_portfolio, "buy", "1")
    assert response.status_code == 400
    assert "portfolio" in response.json()["errors"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/portfolios/",
        "/api/v1/orders/",
        "/api/v1/trades/",
        "/api/v1/watchlists/",
        "/api/v1/alerts/",
        "/api/v1/notifications/",
    ],
)
def test_lists_never_leak(bob_api, alice_portfolio, alices_things, url):
    assert bob_api.get(url).json()["count"] == 0


def test_filters_never_leak(bob_api, alice_portfolio, alices_things):
    assert bob_api.get(f"/api/v1/orders/?portfolio={alice_portfolio.pk}").json()["count"] == 0
    assert bob_api.get(f"/api/v1/trades/?portfolio={alice_portfolio.pk}").json()["count"] == 0
    assert b"bitcoin" not in b"".join(bob_api.get("/api/v1/trades/?format=csv").streaming_content)


def test_alice_sees_her_own(alice_api, alice_portfolio, alices_things):
    assert alice_api.get("/api/v1/orders/").json()["count"] == 2
    assert alice_api.get(f"/api/v1/orders/?portfolio={alice_portfolio.pk}&status=open").json()["count"] == 1


def test_operators_read_everyone_but_never_trade_for_them(alice_portfolio, alices_things):
    from conftest import api_for, make_user

    operator = api_for(make_user("ops@example.com", role="admin"))
    assert operator.get(f"/api/v1/portfolios/{alice_portfolio.pk}/summary/").status_code == 200
    assert operator.get("/api/v1/orders/").json()["count"] == 2
    assert operator.post(f"/api/v1/orders/{alices_things['order']}/cancel/").status_code == 404
    assert order(operator, alice_portfolio, "buy", "1").status_code == 400


def test_operators_see_portfolios_in_the_admin_but_cannot_edit_cash(client, alice_portfolio):
    from conftest import PASSWORD, make_user

    make_user("ops@example.com", role="admin")
    client.post("/login/", {"email": "ops@example.com", "password": PASSWORD})
    page = client.get(f"/admin/portfolios/portfolio/{alice_portfolio.pk}/change/")
    assert page.status_code == 200
    assert 'name="cash"' not in page.content.decode()  # read-only: money moves through services only
    assert client.get("/admin/portfolios/order/").status_code == 200
    assert client.get("/admin/portfolios/trade/").status_code == 200
