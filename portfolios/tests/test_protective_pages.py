"""The order ticket's protective orders in the browser: placing, previewing, refusing beside the field, and
where an open stop or target shows (open orders, the position it guards)."""

import re
from decimal import Decimal

import pytest

from portfolios import services
from portfolios.models import Order

from .test_pages import field_errors, log_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    log_in(client, alice)
    return client


@pytest.fixture
def long_two(alice, alice_portfolio):
    services.place_order(
        user=alice, portfolio_id=alice_portfolio.pk, coin_id="bitcoin", side="buy", type="market", quantity=Decimal(2)
    )
    return alice_portfolio


def _ticket(client, portfolio, **fields):
    body = {"side": "sell", "type": "market", "coin": "bitcoin", "quantity": "1", **fields}
    return client.post(f"/portfolios/{portfolio.pk}/orders/", body)


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_a_stop_placed_from_the_ticket_shows_with_its_distance_and_on_its_position(alice_client, long_two):
    response = _ticket(alice_client, long_two, type="stop", stop_price="90", limit_price="70", take_profit_price="1")
    assert response.status_code == 302  # the hidden fields (a limit, a sell's bracket) are ignored
    stop = Order.objects.get(type="stop")
    assert (stop.stop_price, stop.limit_price, stop.take_profit_price) == (Decimal(90), None, None)
    page = alice_client.get(response["Location"])
    text = _text(page)
    assert "Stop sell of 1 BIT placed: it triggers at $90.00." in text
    assert re.search(r"\$90\.00 −10\.00% away", text), text
    assert "stop $90" in text  # on the position it guards


def test_a_trailing_stop_and_a_bracket_from_the_ticket(alice_client, alice_portfolio):
    bought = _ticket(
        alice_client, alice_portfolio, side="buy", quantity="1", stop_loss_price="80", take_profit_price="150"
    )
    assert bought.status_code == 302
    stop, target = Order.objects.filter(parent__isnull=False).order_by("type")
    assert (stop.stop_price, target.stop_price, stop.oco_group == target.oco_group) == (80, 150, True)
    text = _text(alice_client.get(bought["Location"]))
    assert "stop $80" in text
    assert "target $150" in text
    services.cancel_order(user=stop.portfolio.owner, order_id=stop.pk)
    services.cancel_order(user=stop.portfolio.owner, order_id=target.pk)
    trailed = _ticket(alice_client, alice_portfolio, type="trailing_stop", trail_percent="5")
    assert trailed.status_code == 302
    text = _text(alice_client.get(trailed["Location"]))
    assert "Trailing stop sell of 1 BIT placed: it trails the best price by 5 %, now at $95.00." in text
    assert "trails 5.00%" in text


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"type": "stop", "stop_price": "105"}, "stop_price", "must be below the current price (100)"),
        ({"type": "stop"}, "stop_price", "A stop order needs a stop price."),
        ({"type": "stop_limit", "stop_price": "90"}, "limit_price", "A stop limit order needs a limit price."),
        ({"type": "trailing_stop"}, "trail_percent", "Give a trail in percent or an amount"),
        ({"type": "trailing_stop", "trail_percent": "100"}, "trail_percent", "Enter a trail below 100 %."),
        ({"type": "take_profit", "side": "buy", "stop_price": "120"}, "side", "A take-profit order sells a position"),
        ({"side": "buy", "stop_loss_price": "120"}, "stop_loss_price", "The stop loss must be below the entry price"),
    ],
)
def test_a_refused_protective_order_says_why_beside_its_field(alice_client, long_two, fields, field, message):
    response = _ticket(alice_client, long_two, **fields)
    assert response.status_code == 400
    errors = field_errors(response, field)
    assert errors, _text(response)[:2000]
    assert message in errors[0]
    assert not Order.objects.exclude(type="market").exists()


def test_the_preview_shows_the_trigger_and_what_a_gap_does(alice_client, long_two):
    url = f"/portfolios/{long_two.pk}/orders/preview/"
    stop = _text(
        alice_client.get(url, {"side": "sell", "type": "stop", "coin": "bitcoin", "quantity": "1", "stop_price": "90"})
    )
    assert "Triggers at $90" in stop
    assert "−10.00% from $100" in stop
    assert "a price that gaps past the trigger fills at that price" in stop
    trail = _text(
        alice_client.get(
            url, {"side": "sell", "type": "trailing_stop", "coin": "bitcoin", "quantity": "1", "trail_amount": "2.5"}
        )
    )
    assert "Stop starts at $97.5" in trail
    assert "never moves back" in trail
