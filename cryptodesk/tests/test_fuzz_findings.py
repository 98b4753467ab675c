"""Inputs that once answered 500 or broke the published schema: each must stay a 2xx or a 4xx problem."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import jsonschema
import pytest
from django.utils import timezone

from accounts.models import User
from accounts.services import delete_users
from conftest import api_for
from portfolios import services
from portfolios.api.views import TRADE_COLUMNS
from portfolios.models import Order, Trade
from portfolios.tests.conftest import set_price


@pytest.fixture
def alice_with_trades(alice):
    set_price("bitcoin", "100")
    portfolio = services.create_portfolio(owner=alice, name="Main", starting_cash=Decimal("10000"))
    for side in ("buy", "sell"):
        services.place_order(
            user=alice, portfolio_id=portfolio.pk, coin_id="bitcoin", side=side, type="market", quantity=Decimal("1")
        )
    assert Trade.objects.filter(portfolio=portfolio).count() == 2
    return alice


def test_deleting_an_account_with_trades_deletes_its_orders_and_trades(alice_with_trades, bob):
    bob_portfolio = services.create_portfolio(owner=bob, name="Bob's", starting_cash=Decimal("100"))
    services.place_order(
        user=bob, portfolio_id=bob_portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=Decimal("0.5")
    )

    response = api_for(alice_with_trades).delete("/api/v1/me/")

    assert response.status_code == 204
    assert not User.objects.filter(email="alice@example.com").exists()
    assert not Order.objects.filter(portfolio__owner__email="alice@example.com").exists()
    assert list(Trade.objects.values_list("portfolio__owner__email", flat=True)) == ["bob@example.com"]


def test_operators_bulk_delete_of_users_with_trades(alice_with_trades):
    assert delete_users(users=User.objects.filter(pk=alice_with_trades.pk)) == 1
    assert Trade.objects.count() == 0
    assert Order.objects.count() == 0


def _response_schema(client, path: str, status: str = "200") -> dict:
    """The published schema for one GET operation's response, with the components it refers to."""
    document = client.get("/api/schema/", {"format": "json"}).json()
    schema = document["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


@pytest.fixture
def priced_points(db):
    from market.models import PricePoint

    set_price("bitcoin", "100")
    now = timezone.now()
    PricePoint.objects.bulk_create(
        PricePoint(
            coin_id="bitcoin",
            ts=now - timedelta(hours=hours),
            price=Decimal("100.5") + hours,
            market_cap=Decimal("1000000"),
            total_volume=Decimal("5000.25"),
        )
        for hours in range(1, 30)
    )


@pytest.mark.parametrize("action", ["history", "ohlc"])
def test_price_series_match_their_published_schema(anon_api, priced_points, action):
    response = anon_api.get(f"/api/v1/coins/bitcoin/{action}/", {"days": "7"})

    assert response.status_code == 200
    body = response.json()
    first = body[0] if action == "ohlc" else body["prices"][0]
    assert isinstance(first[0], int)
    assert isinstance(first[1], str)
    jsonschema.validate(body, _response_schema(anon_api, f"/api/v1/coins/{{id}}/{action}/"))


def test_top_limit_bounds_are_published_as_enforced(anon_api, db):
    document = anon_api.get("/api/schema/", {"format": "json"}).json()
    parameters = document["paths"]["/api/v1/market/top/{category}/"]["get"]["parameters"]
    limit = next(parameter for parameter in parameters if parameter["name"] == "limit")

    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
    for refused in (limit["schema"]["minimum"] - 1, limit["schema"]["maximum"] + 1):
        response = anon_api.get("/api/v1/market/top/gainers/", {"limit": refused})
        assert response.status_code == 400
        assert response["Content-Type"] == "application/problem+json"
    assert anon_api.get("/api/v1/market/top/gainers/", {"limit": 100}).status_code == 200


def test_csv_is_offered_for_the_trade_list_only(alice_with_trades):
    client = api_for(alice_with_trades)
    trade = Trade.objects.filter(portfolio__owner=alice_with_trades).first()

    by_suffix = client.get(f"/api/v1/trades/{trade.pk}/", {"format": "csv"})
    by_accept = client.get(f"/api/v1/trades/{trade.pk}/", HTTP_ACCEPT="text/csv")
    export = client.get("/api/v1/trades/", {"format": "csv"})

    assert by_suffix.status_code == 404
    assert by_accept.status_code == 406
    for refused in (by_suffix, by_accept):
        assert refused["Content-Type"] == "application/problem+json"
    assert export.status_code == 200
    assert export["Content-Type"].startswith("text/csv")
    lines = b"".join(export.streaming_content).decode().splitlines()
    assert lines[0].split(",") == list(TRADE_COLUMNS)
    assert len(lines) == 3


def test_trade_schema_declares_csv_as_text_on_the_list_only(anon_api, db):
    paths = anon_api.get("/api/schema/", {"format": "json"}).json()["paths"]

    detail = paths["/api/v1/trades/{id}/"]["get"]["responses"]["200"]["content"]
    listing = paths["/api/v1/trades/"]["get"]["responses"]["200"]["content"]

    assert set(detail) == {"application/json"}
    assert "format" not in {parameter["name"] for parameter in paths["/api/v1/trades/{id}/"]["get"]["parameters"]}
    assert listing["text/csv"]["schema"] == {"type": "string"}
    assert listing["application/json"]["schema"] == {"$ref": "#/components/schemas/PaginatedTradeList"}


def test_operator_sync_with_the_provider_down_is_accepted_and_recorded(
    db, django_capture_on_commit_callbacks, monkeypatch
):
    from market.coingecko import CoinGeckoClient, CoinGeckoUnavailable
    from market.models import SyncRun

    def unreachable(self, *args, **kwargs):
        raise CoinGeckoUnavailable("/coins/markets: ConnectError")

    monkeypatch.setattr(CoinGeckoClient, "markets", unreachable)
    operator = User.objects.create_user("ops@example.com", "correct-horse-battery-9", role="admin")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_for(operator).post("/api/v1/market/sync/")

    assert response.status_code == 202
    run = SyncRun.objects.get()
    assert response.json()["sync_run"]["id"] == run.pk
    assert (run.status, run.error) == (SyncRun.Status.FAILED, "/coins/markets: ConnectError")


@pytest.mark.parametrize("content_type", ["multipart", "form"])
def test_a_body_with_too_many_form_fields_is_a_400_problem(alice_api, settings, content_type):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"name{index}": "x" for index in range(10)}
    if content_type == "form":
        response = alice_api.post(
            "/api/v1/watchlists/", urlencode(fields), content_type="application/x-www-form-urlencoded"
        )
    else:
        response = alice_api.post("/api/v1/watchlists/", fields, format="multipart")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 400
