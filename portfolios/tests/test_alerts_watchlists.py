"""Watchlists, alerts firing once per crossing, notifications."""

from decimal import Decimal

import pytest

from portfolios import services
from portfolios.models import Alert, Notification

from .conftest import set_price

pytestmark = pytest.mark.django_db


def test_watchlist_crud(alice_api, btc):
    set_price("ethereum", "10")
    created = alice_api.post("/api/v1/watchlists/", {"name": "Majors", "coins": ["bitcoin", "ethereum"]}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["coins"] == ["bitcoin", "ethereum"]
    url = f"/api/v1/watchlists/{body['id']}/"
    assert alice_api.patch(url, {"coins": ["ethereum"]}, format="json").json()["coins"] == ["ethereum"]
    assert alice_api.patch(url, {"name": "Big two"}, format="json").json() == {
        **body,
        "name": "Big two",
        "coins": ["ethereum"],
    }
    bad = alice_api.post("/api/v1/watchlists/", {"name": "X", "coins": ["nocoin"]}, format="json")
    assert bad.status_code == 400
    assert "coins" in bad.json()["errors"]
    dup = alice_api.post("/api/v1/watchlists/", {"name": "Big two"}, format="json")
    assert dup.status_code == 400
    assert alice_api.delete(url).status_code == 204
    assert alice_api.get("/api/v1/watchlists/").json()["count"] == 0


def test_alert_crud_and_validation(alice_api, btc):
    created = alice_api.post(
        "/api/v1/alerts/", {"coin": "bitcoin", "condition": "price_above", "threshold": "120"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["is_met"] is False
    assert (
        alice_api.post(
            "/api/v1/alerts/", {"coin": "bitcoin", "condition": "price_below", "threshold": "-1"}, format="json"
        ).status_code
        == 400
    )
    assert (
        alice_api.post(
            "/api/v1/alerts/", {"coin": "bitcoin", "condition": "moon", "threshold": "1"}, format="json"
        ).status_code
        == 400
    )
    assert (
        alice_api.post(
            "/api/v1/alerts/", {"coin": "nope", "condition": "price_above", "threshold": "1"}, format="json"
        ).status_code
        == 400
    )
    negative_change = alice_api.post(
        "/api/v1/alerts/", {"coin": "bitcoin", "condition": "change_24h_below", "threshold": "-5"}, format="json"
    )
    assert negative_change.status_code == 201


def test_alert_fires_once_per_crossing(alice, btc, mailoutbox, django_capture_on_commit_callbacks):
    alert = Alert.objects.create(
        owner=alice, coin_id="bitcoin", condition="price_above", threshold=Decimal("120"), notify_email=True
    )
    assert services.evaluate_alerts() == 0
    set_price("bitcoin", "125")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluate_alerts(coin_ids=["bitcoin"]) == 1
    assert services.evaluate_alerts() == 0  # still above: no second notification
    set_price("bitcoin", "110")
    assert services.evaluate_alerts() == 0  # back below: re-armed, nothing sent
    set_price("bitcoin", "130")
    assert services.evaluate_alerts() == 1  # a new crossing
    notifications = Notification.objects.filter(user=alice)
    assert notifications.count() == 2
    first = notifications.last()
    assert first.title == "Bitcoin: price above 120"
    assert first.body == "Bitcoin (BIT) is at 125 USD."
    assert first.link == "/markets/bitcoin/"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [alice.email]
    alert.refresh_from_db()
    assert alert.is_met is True


def test_change_alerts_and_inactive_alerts(alice, btc):
    set_price("bitcoin", "100", change="-7.5")
    Alert.objects.create(owner=alice, coin_id="bitcoin", condition="change_24h_below", threshold=Decimal("-5"))
    Alert.objects.create(owner=alice, coin_id="bitcoin", condition="change_24h_above", threshold=Decimal("5"))
    Alert.objects.create(
        owner=alice, coin_id="bitcoin", condition="price_below", threshold=Decimal("200"), is_active=False
    )
    assert services.evaluate_alerts() == 1


def test_a_sync_evaluates_alerts_through_the_hook(alice, btc):
    from market import hooks

    Alert.objects.create(owner=alice, coin_id="bitcoin", condition="price_below", threshold=Decimal("90"))
    set_price("bitcoin", "80")
    hooks.publish(hooks.PricesUpdated(coin_ids=("bitcoin",), as_of=btc.last_updated, source="test"))
    assert Notification.objects.filter(user=alice).count() == 1


def test_notifications_list_and_mark_read(alice_api, alice, bob):
    for i in range(3):
        Notification.objects.create(user=alice, title=f"n{i}")
    Notification.objects.create(user=bob, title="bob's")
    assert alice_api.get("/api/v1/notifications/").json()["count"] == 3
    first = alice_api.get("/api/v1/notifications/").json()["results"][0]
    assert first["is_read"] is False
    assert alice_api.post(f"/api/v1/notifications/{first['id']}/read/").status_code == 204
    assert alice_api.get("/api/v1/notifications/?unread=true").json()["count"] == 2
    assert alice_api.post("/api/v1/notifications/read-all/").status_code == 204
    assert alice_api.get("/api/v1/notifications/?unread=1").json()["count"] == 0
    assert Notification.objects.get(user=bob).read_at is None
