"""Paper trading in a browser: fund a portfolio, trade from the order ticket, then let a price sync fire an alert
and fill a limit order."""

import re
from decimal import ROUND_HALF_EVEN, ROUND_UP, Context, Decimal, Inexact, InvalidOperation

import httpx
import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from conftest import PASSWORD
from market import hooks
from market.demo.snapshot import load_snapshot
from market.models import Quote
from market.templatetags.market_tags import price as price_text
from portfolios.models import Holding, Notification, Order, Portfolio, Trade
from portfolios.templatetags.portfolio_tags import exact_money, money, qty, signed_money

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PORTFOLIO = "Paper desk"
STARTING_CASH = Decimal(10_000)
FEE_RATE = Decimal("0.001")  # 10 bps of the notional
ATTO = Decimal("1e-18")  # amounts are stored with 18 decimal places
CENT = Decimal("0.01")
BUY_QTY = Decimal("0.0375")
OVERSELL_QTY = Decimal("0.04")
SELL_QTY = Decimal("0.0125")
LIMIT_QTY = Decimal("0.01")
FIELD_ERROR = re.compile(r'<p class="field-error"[^>]*data-field-error="([a-z_]+)">([^<]*)</p>')


WIDE = Context(prec=80)
EXACT = Context(prec=80, traps=[Inexact, InvalidOperation])  # a product that would need rounding is a test bug


def times(a: Decimal, b: Decimal) -> Decimal:
    return EXACT.multiply(a, b)


def fee(notional: Decimal) -> Decimal:
    """The desk's fee, rounded up to the stored precision (it never undercharges)."""
    return times(notional, FEE_RATE).quantize(ATTO, rounding=ROUND_UP, context=WIDE)


def per_unit(cost: Decimal, quantity: Decimal) -> Decimal:
    """An average cost as stored: 18 decimal places, half-even."""
    return WIDE.divide(cost, quantity).quantize(ATTO, rounding=ROUND_HALF_EVEN, context=WIDE)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def expect_messages(page: Page, *texts: str) -> None:
    expect(page.locator("ul.messages li")).to_have_text(list(texts))


def expect_placed(page: Page, message: str) -> None:
    """Back on the portfolio after an order, with htmx wired to the fresh ticket (it does so on DOMContentLoaded)."""
    expect_messages(page, message)
    page.wait_for_load_state()


def tile(page: Page, title: str) -> Locator:
    return page.get_by_test_id("summary").locator(".tile", has=page.get_by_role("heading", name=title, exact=True))


def expect_preview(page: Page, *, price_label: str, unit_price: Decimal, notional: Decimal, total: Decimal) -> None:
    """The htmx estimate under the ticket: price, notional, 10 bps fee and the total, to the last digit."""
    preview = page.get_by_test_id("ticket-preview")
    expect(preview.locator("dt").first).to_have_text(price_label)
    expect(preview.locator("dd").first).to_have_text(price_text(unit_price))
    expect(page.get_by_test_id("estimate-notional")).to_have_text(money(notional))
    expect(preview.locator("dt", has_text="Fee")).to_have_text("Fee (10 bps)")
    expect(page.get_by_test_id("estimate-fee")).to_have_text(money(fee(notional)))
    expect(page.get_by_test_id("estimate-total")).to_have_text(money(total))
    figures = preview.evaluate("(dl) => [dl.dataset.notional, dl.dataset.fee, dl.dataset.total]")
    assert [Decimal(figure) for figure in figures] == [notional, fee(notional), total]


def publish_price(price: Decimal) -> None:
    """What a market sync does for Bitcoin: write the new quote, then announce it (subscribers run inline)."""
    now = timezone.now()
    assert Quote.objects.filter(coin_id="bitcoin").update(current_price=price, last_updated=now, synced_at=now) == 1
    hooks.publish(hooks.PricesUpdated(coin_ids=("bitcoin",), as_of=now, source="coingecko"))


def test_fund_trade_alert_and_fill_a_limit_order(
    page: Page, page_guard: PageGuard, live_server, alice, save_screenshot
) -> None:
    base = live_server.url
    assert settings.PAPER_FEE_BPS == 10
    assert load_snapshot() is not None
    market = Quote.objects.get(coin_id="bitcoin").current_price
    change_24h = Quote.objects.get(coin_id="bitcoin").price_change_percentage_24h

    page.goto("/login/")
    page.locator("input[name=email]").fill(alice.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard/")

    # A new portfolio funded with 10,000 paper dollars.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Portfolios").click()
    expect(page).to_have_url(f"{base}/portfolios/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Portfolios")
    form = page.get_by_test_id("portfolio-form")
    form.get_by_label("Name").fill(PORTFOLIO)
    form.get_by_label("Starting cash (USD)").fill(f"{STARTING_CASH}")
    form.get_by_role("button", name="Create portfolio").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/portfolios/\d+/$"))
    expect_messages(page, f"Portfolio “{PORTFOLIO}” created with $10,000.00 in cash.")
    portfolio = Portfolio.objects.get(owner=alice, name=PORTFOLIO)
    detail_url = f"{base}/portfolios/{portfolio.pk}/"

    page.locator(".crumbs").get_by_role("link", name="Portfolios").click()
    expect(page).to_have_url(f"{base}/portfolios/")
    row = page.get_by_test_id("portfolio-table").locator(f'tr[data-portfolio-id="{portfolio.pk}"]')
    expect(row.locator("td").nth(1)).to_have_text("$10,000.00")
    row.get_by_role("link", name=PORTFOLIO).click()
    expect(page).to_have_url(detail_url)
    expect(page.get_by_role("heading", level=1)).to_have_text(PORTFOLIO)
    expect(page.get_by_test_id("cash")).to_have_text("$10,000.00")
    expect(page.get_by_test_id("holdings")).to_contain_text("No coins yet")
    expect(page.get_by_test_id("recent-trades")).to_contain_text("No trades yet.")
    page.wait_for_function("() => typeof window.htmx === 'object'")

    # Buy at market: the estimate shows price, fee and total before anything is sent.
    ticket = page.get_by_test_id("order-ticket")
    expect(ticket).to_contain_text("Available cash $10,000.00 · fee 10 bps of the notional")
    ticket.get_by_label("Coin").select_option("bitcoin")
    expect(ticket.get_by_role("radio", name="Buy")).to_be_checked()
    expect(ticket.get_by_role("radio", name="Market")).to_be_checked()
    expect(ticket.get_by_label("Limit price (USD)")).to_be_hidden()
    ticket.get_by_label("Quantity").fill(f"{BUY_QTY}")
    buy_notional = times(BUY_QTY, market)
    buy_cost = buy_notional + fee(buy_notional)
    expect_preview(page, price_label="Market price", unit_price=market, notional=buy_notional, total=buy_cost)
    expect(page.get_by_test_id("estimate-cash-after")).to_have_text(money(STARTING_CASH - buy_cost))
    expect(page.locator("[data-preview-problem]")).to_have_count(0)
    save_screenshot(page, "paper-ticket-buy")
    ticket.get_by_role("button", name="Place order").click()
    expect_placed(page, f"Bought {BUY_QTY} BTC at {money(market)} (fee {money(fee(buy_notional))}).")

    average_cost = per_unit(buy_cost, BUY_QTY)
    holding = page.get_by_test_id("holdings").locator('tbody tr[data-coin="bitcoin"]')
    expect(page.get_by_test_id("holdings").locator("tbody tr")).to_have_count(1)
    expect(holding.locator("td").nth(1)).to_have_text(
        f"{qty(BUY_QTY)} avg cost {price_text(average_cost)}", use_inner_text=True
    )
    expect(holding.locator("td").nth(3).locator("strong")).to_have_text(money(buy_notional))
    trades = page.get_by_test_id("trades-table").locator("tbody tr")
    expect(trades).to_have_count(1)
    expect(trades.first.locator("td").nth(1)).to_have_text("Buy")
    expect(trades.first.locator("td").nth(2)).to_have_text(qty(BUY_QTY))
    expect(trades.first.locator("td").nth(3)).to_have_text(price_text(market))
    expect(trades.first.locator("td").nth(4)).to_have_text(money(fee(buy_notional)))
    expect(trades.first.locator("td").nth(5)).to_have_text("—")
    cash = STARTING_CASH - buy_cost
    expect(page.get_by_test_id("cash")).to_have_text(money(cash))

    # Selling more than is held: the estimate says so as it is typed.
    ticket.get_by_role("radio", name="Sell").check()
    ticket.get_by_label("Quantity").fill(f"{OVERSELL_QTY}")
    expect(page.locator("[data-preview-problem]")).to_have_text(f"You have {BUY_QTY} BTC available to sell.")
    expect(page.get_by_test_id("estimate-total")).to_have_text(
        money(times(OVERSELL_QTY, market) - fee(times(OVERSELL_QTY, market)))
    )

    # Sent anyway, the order is refused with a 400 and the reason beside the quantity field. It goes through
    # this browser's session but not the browser itself: the page guard allows no error response.
    cookies = {cookie["name"]: cookie["value"] for cookie in page.context.cookies()}
    with httpx.Client(base_url=base, cookies=cookies, trust_env=False, timeout=10) as client:
        refused = client.post(
            f"/portfolios/{portfolio.pk}/orders/",
            data={
                "csrfmiddlewaretoken": ticket.locator("input[name=csrfmiddlewaretoken]").input_value(),
                "side": "sell",
                "type": "market",
                "coin": "bitcoin",
                "quantity": f"{OVERSELL_QTY}",
                "limit_price": "",
            },
        )
    assert refused.status_code == 400, refused.text[:500]
    assert FIELD_ERROR.findall(refused.text) == [
        (
            "quantity",
            f"You cannot sell {OVERSELL_QTY} BTC: you hold {BUY_QTY}, {BUY_QTY} of it available "
            "(open sell orders hold the rest).",
        )
    ]
    assert Holding.objects.get(portfolio=portfolio, coin_id="bitcoin").quantity == BUY_QTY
    assert Portfolio.objects.get(pk=portfolio.pk).cash == cash
    assert Order.objects.filter(portfolio=portfolio).count() == Trade.objects.filter(portfolio=portfolio).count() == 1

    # Sell part of it: proceeds, then the realized P&L against the average cost (fees included).
    ticket.get_by_label("Quantity").fill(f"{SELL_QTY}")
    sell_notional = times(SELL_QTY, market)
    proceeds = sell_notional - fee(sell_notional)
    expect_preview(page, price_label="Market price", unit_price=market, notional=sell_notional, total=proceeds)
    expect(page.locator("[data-preview-problem]")).to_have_count(0)
    ticket.get_by_role("button", name="Place order").click()
    expect_placed(page, f"Sold {SELL_QTY} BTC at {money(market)} (fee {money(fee(sell_notional))}).")
    cost_basis = times(SELL_QTY, average_cost).quantize(ATTO, rounding=ROUND_HALF_EVEN, context=WIDE)
    realized = times(SELL_QTY, market) - fee(sell_notional) - cost_basis
    assert realized < 0  # at an unchanged price both fees are lost
    cash += proceeds
    held = BUY_QTY - SELL_QTY
    expect(tile(page, "Realized P&L").locator(".tile-value")).to_have_text(signed_money(realized))
    expect(trades).to_have_count(2)
    expect(trades.first.locator("td").nth(1)).to_have_text("Sell")
    expect(trades.first.locator("td").nth(2)).to_have_text(qty(SELL_QTY))
    expect(trades.first.locator("td").nth(5)).to_have_text(signed_money(realized))
    expect(holding.locator("td").nth(1)).to_have_text(
        f"{qty(held)} avg cost {price_text(average_cost)}", use_inner_text=True
    )
    expect(page.get_by_test_id("cash")).to_have_text(money(cash))
    assert Trade.objects.get(portfolio=portfolio, side="sell").realized_pnl == realized

    # A limit buy below the market waits under open orders, its cost held from the cash.
    limit = cents(market * Decimal("0.97"))
    ticket.get_by_role("radio", name="Limit", exact=True).check()
    ticket.get_by_label("Limit price (USD)").fill(f"{limit}")
    ticket.get_by_label("Quantity").fill(f"{LIMIT_QTY}")
    limit_notional = times(LIMIT_QTY, limit)
    reserve = limit_notional + fee(limit_notional)
    expect_preview(page, price_label="Limit price", unit_price=limit, notional=limit_notional, total=reserve)
    ticket.get_by_role("button", name="Place order").click()
    expect_placed(page, f"Limit buy of {LIMIT_QTY} BTC at {money(limit)} placed: it fills when the market reaches it.")
    open_orders = page.get_by_test_id("open-orders").locator("tbody tr")
    expect(open_orders).to_have_count(1)
    expect(open_orders.first.locator(".side")).to_have_text("Buy")
    expect(open_orders.first.locator("td").nth(1).locator(".cell-note")).to_have_text("limit")
    expect(open_orders.first.locator("td").nth(2)).to_have_text(qty(LIMIT_QTY))
    expect(open_orders.first.locator("td").nth(3)).to_have_text(money(limit))
    expect(open_orders.first.get_by_test_id("order-trigger")).to_have_text("—")  # a limit order has no trigger
    expect(open_orders.first.locator("td").nth(5)).to_have_text(money(reserve))
    expect(page.get_by_test_id("available-cash")).to_have_text(money(cash - reserve))
    expect(trades).to_have_count(2)

    # An alert a little above the current Bitcoin price.
    threshold = cents(market * Decimal("1.005"))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    expect(page).to_have_url(f"{base}/alerts/")
    alert_form = page.get_by_test_id("alert-form")
    alert_form.get_by_label("Coin").select_option("bitcoin")
    alert_form.get_by_label("Condition").select_option("price_above")
    alert_form.get_by_label("Price", exact=True).fill(f"{threshold}")
    alert_form.get_by_role("button", name="Create alert").click()
    expect(page).to_have_url(f"{base}/alerts/")
    expect_messages(page, "Alert set: Bitcoin price above.")
    alert_row = page.get_by_test_id("alerts-table").locator("tbody tr")
    expect(alert_row).to_have_count(1)
    expect(alert_row.locator("td").nth(1)).to_have_text(f"Price above {exact_money(threshold)}", use_inner_text=True)
    expect(alert_row.locator(".badge")).to_have_text("armed")
    expect(alert_row.locator("td").nth(3).locator(".cell-note")).to_have_text("never fired")
    expect(page.get_by_test_id("unread-count")).to_have_count(0)

    # A sync lifts Bitcoin through the alert but not down to the limit: the alert fires, the order waits.
    higher = cents(threshold * Decimal("1.01"))
    publish_price(higher)
    page.reload()
    expect(page.get_by_test_id("unread-count")).to_have_text("1")
    expect(page.get_by_test_id("bell")).to_have_attribute("aria-label", "Notifications, 1 unread")
    expect(alert_row.locator("td").nth(2)).to_have_text(price_text(higher))
    expect(alert_row.locator(".badge")).to_have_text("triggered")
    page.get_by_test_id("bell").click()
    expect(page).to_have_url(f"{base}/notifications/")
    notes = page.get_by_test_id("notifications-list").locator("li")
    expect(notes).to_have_count(1)
    expect(notes.first).to_have_class(re.compile(r"\bis-unread\b"))
    expect(notes.first.locator(".note-title a")).to_have_text(f"Bitcoin: price above {threshold.normalize():f}")
    expect(notes.first.locator(".note-title a")).to_have_attribute("href", "/markets/bitcoin/")
    expect(notes.first.locator(".note-body .muted")).to_have_text(
        f"Bitcoin (BTC) is at {higher.normalize():f} USD, {change_24h.normalize():f} % over 24 h."
    )
    save_screenshot(page, "paper-notifications")
    page.goto(detail_url)
    expect(open_orders).to_have_count(1)
    expect(trades).to_have_count(2)

    # The next sync drops it below the limit: the order fills at the market price and leaves the open orders.
    lower = cents(limit * Decimal("0.99"))
    publish_price(lower)
    page.reload()
    expect(page.get_by_test_id("open-orders")).to_contain_text("No open orders.")
    expect(open_orders).to_have_count(0)
    fill_notional = times(LIMIT_QTY, lower)
    cash -= fill_notional + fee(fill_notional)
    expect(trades).to_have_count(3)
    expect(trades.first.locator("td").nth(1)).to_have_text("Buy")
    expect(trades.first.locator("td").nth(2)).to_have_text(qty(LIMIT_QTY))
    expect(trades.first.locator("td").nth(3)).to_have_text(price_text(lower))
    expect(trades.first.locator("td").nth(4)).to_have_text(money(fee(fill_notional)))
    expect(page.get_by_test_id("cash")).to_have_text(money(cash))
    expect(page.get_by_test_id("available-cash")).to_have_text(money(cash))
    average_cost = per_unit(times(held, average_cost) + fill_notional + fee(fill_notional), held + LIMIT_QTY)
    held += LIMIT_QTY
    expect(holding.locator("td").nth(1)).to_have_text(
        f"{qty(held)} avg cost {price_text(average_cost)}", use_inner_text=True
    )
    expect(holding.locator("td").nth(2)).to_contain_text(price_text(lower))
    expect(tile(page, "Realized P&L").locator(".tile-value")).to_have_text(signed_money(realized))
    # Falling back under the threshold re-arms the alert without a second notification.
    expect(page.get_by_test_id("unread-count")).to_have_text("1")
    save_screenshot(page, "paper-portfolio")

    portfolio.refresh_from_db()
    assert (portfolio.cash, portfolio.reserved_cash) == (cash, 0)
    position = Holding.objects.get(portfolio=portfolio, coin_id="bitcoin")
    assert (position.quantity, position.average_cost, position.realized_pnl) == (held, average_cost, realized)
    assert Order.objects.get(portfolio=portfolio, type="limit").status == Order.Status.FILLED
    assert Notification.objects.filter(user=alice).count() == 1
    page_guard.assert_clean()
