"""Protective orders in a browser: bracket a buy from the ticket, place a trailing stop, watch it follow the price
up and fill on the way down, the bracket's target cancelling its stop."""

from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conftest import PASSWORD, make_user
from market.models import Coin, Quote
from portfolios import services
from portfolios.models import Order
from portfolios.tasks import fill_limit_orders_task

from .conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _price(value: str) -> None:
    """A price write and what its hook runs: triggers, then limit fills."""
    Quote.objects.filter(coin_id="bitcoin").update(current_price=Decimal(value), last_updated=timezone.now())
    fill_limit_orders_task(["bitcoin"])


def test_bracket_a_buy_and_let_a_trailing_stop_follow_the_price(page: Page, page_guard, live_server):
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=coin, current_price=Decimal(100), last_updated=timezone.now())
    user = make_user("trader@example.com")
    portfolio = services.create_portfolio(owner=user, name="Desk", starting_cash=Decimal(10_000))
    log_in(page, user.email, PASSWORD)
    page.goto(f"/portfolios/{portfolio.pk}/")
    ticket = page.get_by_test_id("order-ticket")

    ticket.get_by_label("Quantity").fill("2")
    ticket.locator("summary", has_text="Protect this buy").click()
    ticket.get_by_label("Stop loss (USD)").fill("80")
    ticket.get_by_label("Take profit (USD)").fill("150")
    ticket.get_by_role("button", name="Place order").click()
    expect(page.locator("ul.messages li")).to_have_text(["Bought 2 BTC at $100.00 (fee $0.20)."])
    guard = page.get_by_test_id("holdings").get_by_test_id("position-guard")
    expect(guard).to_have_text("stop $80.00 · target $150.00")
    orders = page.get_by_test_id("open-orders-table")
    expect(orders.get_by_test_id("order-trigger")).to_have_count(2)
    expect(orders.get_by_test_id("order-trigger").first).to_contain_text("OCO")

    page.get_by_test_id("order-ticket").get_by_label("Quantity").fill("1")  # a second lot, unguarded
    page.get_by_test_id("order-ticket").get_by_role("button", name="Place order").click()
    expect(page.locator("ul.messages li")).to_have_text(["Bought 1 BTC at $100.00 (fee $0.10)."])

    ticket = page.get_by_test_id("order-ticket")
    ticket.get_by_role("radio", name="Sell").check()
    ticket.get_by_role("radio", name="Trailing stop").check()
    expect(ticket.get_by_label("Stop loss (USD)")).to_be_hidden()  # a sell takes no bracket
    ticket.get_by_label("Quantity").fill("1")
    ticket.get_by_label("Trail (%)").fill("10")
    expect(page.get_by_test_id("estimate-trigger")).to_contain_text("$90")
    ticket.get_by_role("button", name="Place order").click()
    expect(page.locator("ul.messages li")).to_have_text(
        ["Trailing stop sell of 1 BTC placed: it trails the best price by 10 %, now at $90.00."]
    )

    _price("140")  # the trail moves up with the price; the bracket's target is not reached
    page.reload()
    trailing = page.locator("tr", has=page.get_by_text("trailing stop"))
    expect(trailing.get_by_test_id("order-trigger")).to_contain_text("$126.00")
    _price("130")  # a fall does not move it back
    page.reload()
    expect(trailing.get_by_test_id("order-trigger")).to_contain_text("$126.00")

    _price("125")  # through the trailing stop: it sells at 125, the first price seen past 126
    page.reload()
    trail = Order.objects.get(type="trailing_stop")
    assert (trail.status, trail.filled_price) == ("filled", Decimal(125))
    expect(page.get_by_test_id("recent-trades")).to_contain_text("$125.00")
    _price("151")  # the bracket's target: it sells the first lot and cancels its stop
    page.reload()
    assert sorted(Order.objects.filter(parent__isnull=False).values_list("type", "status")) == [
        ("stop", "cancelled"),
        ("take_profit", "filled"),
    ]
    expect(page.get_by_text("No open orders.")).to_be_visible()
    expect(page.get_by_test_id("holdings").get_by_test_id("position-guard")).to_have_count(0)
    page_guard.assert_clean()
