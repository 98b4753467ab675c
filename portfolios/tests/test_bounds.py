"""What one order or transfer may reach, exact sums past 28 digits, name races, idempotency keys."""

from decimal import Decimal

import pytest
from django.db.models import QuerySet

from portfolios import services
from portfolios.models import CashTransfer, Holding, IdempotencyKey, Order, Portfolio, Watchlist

from .conftest import order, set_price

pytestmark = pytest.mark.django_db

E18 = Decimal(10) ** 18


def _hold(portfolio, quantity: Decimal, coin: str = "bitcoin") -> Holding:
    return Holding.objects.create(portfolio=portfolio, coin_id=coin, quantity=quantity, average_cost=0)


def _assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert list(body["errors"]) == [field]
    assert "more than a portfolio can hold" in body["detail"]


def test_a_limit_sell_whose_notional_overflows_is_refused_at_placement(alice_api, alice_portfolio):
    _hold(alice_portfolio, E18)
    response = order(alice_api, alice_portfolio, "sell", str(E18), type="limit", limit_price="10000")
    _assert_refused(response, "quantity")
    assert Order.objects.count() == 0
    assert Holding.objects.get(portfolio=alice_portfolio).reserved_quantity == 0


def test_a_market_sell_whose_proceeds_overflow_the_cash_is_refused(alice_api, alice_portfolio):
    _hold(alice_portfolio, E18)
    set_price("bitcoin", "10000")
    _assert_refused(order(alice_api, alice_portfolio, "sell", str(E18)), "quantity")
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal(10000)
    assert Holding.objects.get(portfolio=alice_portfolio).quantity == E18


@pytest.mark.parametrize("type", ["market", "limit"])
def test_a_buy_that_would_overflow_the_holding_is_refused(alice_api, alice_portfolio, type):
    _hold(alice_portfolio, Decimal(10) ** 20 - E18 // 2)
    set_price("bitcoin", "0.000000000000000001")
    limit = "0.000000000000000001" if type == "limit" else None
    _assert_refused(order(alice_api, alice_portfolio, "buy", str(E18), type=type, limit_price=limit), "quantity")
    assert Portfolio.objects.get(pk=alice_portfolio.pk).reserved_cash == 0


def test_a_deposit_that_would_overflow_the_cash_is_refused(alice_api, alice_portfolio):
    Portfolio.objects.filter(pk=alice_portfolio.pk).update(cash=Decimal(10) ** 20 - 1)
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    _assert_refused(alice_api.post(url, {"kind": "deposit", "amount": "1"}, format="json"), "amount")
    assert alice_api.post(url, {"kind": "deposit", "amount": "0.5"}, format="json").status_code == 201
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal("99999999999999999999.5")


def test_cash_keeps_every_digit_past_the_default_28(alice, alice_portfolio):
    Portfolio.objects.filter(pk=alice_portfolio.pk).update(cash=Decimal(10) ** 12)
    services.transfer_cash(user=alice, portfolio_id=alice_portfolio.pk, kind="deposit", amount=Decimal("1e-18"))
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal("1000000000000.000000000000000001")


def test_valuation_sums_keep_every_digit(alice_api, alice_portfolio):
    cash = Decimal("123456789012.123456789012345678")
    Portfolio.objects.filter(pk=alice_portfolio.pk).update(cash=cash)
    set_price("dust", "0.000000000000000001")
    _hold(alice_portfolio, Decimal(1), coin="dust")
    body = alice_api.get(f"/api/v1/portfolios/{alice_portfolio.pk}/summary/").json()
    assert body["total_value"] == "123456789012.123456789012345679"
    assert body["available_cash"] == "123456789012.123456789012345678"


# --- a unique name taken between the check and the insert ------------------------------------------


@pytest.fixture
def exists_misses_once(monkeypatch):
    """The first exists() check answers False, as if a twin request inserted the row just after it."""
    real = QuerySet.exists
    calls = []

    def exists(self):
        if self.model not in (Portfolio, Watchlist):
            return real(self)
        calls.append(self.model)
        return False if len(calls) == 1 else real(self)

    monkeypatch.setattr(QuerySet, "exists", exists)
    return calls


def test_a_portfolio_name_raced_in_between_is_a_400(alice, alice_api, alice_portfolio, exists_misses_once):
    response = alice_api.post("/api/v1/portfolios/", {"name": "Main", "starting_cash": "10"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["name"]
    assert Portfolio.objects.filter(owner=alice).count() == 1


def test_a_portfolio_rename_raced_in_between_is_a_400(alice, alice_portfolio, exists_misses_once):
    other = Portfolio.objects.create(owner=alice, name="Other", starting_cash=0, cash=0)
    with pytest.raises(services.DomainError) as refused:
        services.rename_portfolio(portfolio=other, name="Main")
    assert refused.value.field == "name"
    assert Portfolio.objects.get(pk=other.pk).name == "Other"


@pytest.mark.parametrize("existing", [True, False])
def test_a_watchlist_name_raced_in_between_is_a_400(alice, alice_api, btc, exists_misses_once, existing):
    services.save_watchlist(owner=alice, name="Majors", coin_ids=[])
    exists_misses_once.clear()
    if existing:
        other = services.save_watchlist(owner=alice, name="Other", coin_ids=[])
        exists_misses_once.clear()
        response = alice_api.patch(f"/api/v1/watchlists/{other.pk}/", {"name": "Majors"}, format="json")
    else:
        response = alice_api.post("/api/v1/watchlists/", {"name": "Majors", "coins": ["bitcoin"]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["name"]


# --- Idempotency-Key ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k" * 201, "", "line\nbreak", "tab\tkey", "nul\x00", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_400(alice_api, alice_portfolio, key):
    response = order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert list(response.json()["errors"]) == ["Idempotency-Key"]
    assert Order.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0


def test_a_200_character_key_is_accepted(alice_api, alice_portfolio):
    assert order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="k" * 200).status_code == 201


def test_a_transfer_with_an_idempotency_key_happens_once(alice_api, alice_portfolio):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    body = {"kind": "deposit", "amount": "250"}
    first = alice_api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    again = alice_api.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal(10250)
    assert CashTransfer.objects.filter(portfolio=alice_portfolio, amount=250).count() == 1
    other = alice_api.post(url, {"kind": "deposit", "amount": "251"}, format="json", HTTP_IDEMPOTENCY_KEY="dep-1")
    assert other.status_code == 422
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal(10250)


def test_an_order_key_reused_for_a_transfer_is_a_422(alice_api, alice_portfolio):
    assert order(alice_api, alice_portfolio, "buy", "1", HTTP_IDEMPOTENCY_KEY="shared").status_code == 201
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    response = alice_api.post(url, {"kind": "withdrawal", "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 422
    assert CashTransfer.objects.filter(kind="withdrawal").count() == 0


def test_a_withdrawal_with_a_malformed_key_is_a_400(alice_api, alice_portfolio):
    url = f"/api/v1/portfolios/{alice_portfolio.pk}/transfers/"
    response = alice_api.post(url, {"kind": "withdrawal", "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 201)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["Idempotency-Key"]
    assert Portfolio.objects.get(pk=alice_portfolio.pk).cash == Decimal(10000)
