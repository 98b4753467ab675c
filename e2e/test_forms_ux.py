"""Forms in a browser: the ticket refuses to place what it says is impossible, an error takes the focus, an
alert shows the input its kind needs, a delete asks first (with and without JavaScript), and a double click
on "Run backtest" sends one request and makes one backtest."""

import re
import time
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect

from conftest import PASSWORD
from market.demo.snapshot import load_snapshot
from market.models import Coin
from portfolios import services as portfolio_services
from portfolios.models import Alert, Watchlist
from strategies import services as strategy_services
from strategies.models import Backtest

from .conftest import PageGuard
from .conftest import log_in as log_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CENTS = re.compile(r"^(?:\$[0-9]{1,3}(?:,[0-9]{3})*\.[0-9]{2}|< \$0\.01)$")
SECOND_PRESS = """() => {
  const button = document.querySelector('[data-testid="backtest-form"] button[type="submit"]');
  button.addEventListener("click", () => setTimeout(() => button.click(), 300), { once: true });
}"""
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def log_in(page: Page, user) -> None:
    log_in_as(page, user.email, PASSWORD)


def expect_refused(page_guard: PageGuard, path: str) -> None:
    """A 400 the test provoked on purpose (a form sent with an error): the guard lets that one pass."""
    entry = f"400 POST {path}"
    assert entry in page_guard.error_responses, page_guard.error_responses
    page_guard.error_responses.remove(entry)
    logged = [line for line in page_guard.console_errors if "status of 400" in line and line.endswith(f"{path}:0)")]
    assert len(logged) == 1, page_guard.console_errors  # the browser's own note of that response
    page_guard.console_errors.remove(logged[0])


@pytest.fixture
def market(db):
    assert load_snapshot() is not None


def test_the_ticket_blocks_an_impossible_order_and_an_error_takes_the_focus(
    page: Page, page_guard: PageGuard, alice, market, save_screenshot
) -> None:
    portfolio = portfolio_services.create_portfolio(owner=alice, name="Desk", starting_cash=Decimal(10_000))
    log_in(page, alice)
    page.goto(f"/portfolios/{portfolio.pk}/")
    page.wait_for_function("() => typeof window.htmx === 'object'")
    ticket = page.get_by_test_id("order-ticket")
    place = ticket.get_by_test_id("place-order")
    ticket.get_by_label("Coin").select_option("bitcoin")

    # Far beyond the cash: the estimate says so beside a disabled button, once.
    ticket.get_by_label("Quantity").fill("1,000")
    reason = page.locator("#ticket-blocked")
    expect(reason).to_have_text(
        re.compile(r"^Not enough cash: this order needs \$[0-9,]+\.[0-9]{2} \(fee included\); ")
    )
    expect(reason).to_contain_text("$10,000.00 is available.")
    expect(place).to_be_disabled()
    expect(place).to_have_attribute("aria-describedby", "ticket-blocked")
    expect(page.get_by_text("Not enough cash")).to_have_count(1)
    save_screenshot(page, "forms-ticket-blocked")

    # Within the cash again: the button is back, and every amount is in cents.
    ticket.get_by_label("Quantity").fill("0.001")
    expect(place).to_be_enabled()
    expect(reason).to_have_count(0)
    for name in ("notional", "fee", "total", "cash-after"):
        expect(page.get_by_test_id(f"estimate-{name}")).to_have_text(CENTS)
    place.click()
    expect(page.locator("ul.messages li")).to_have_text([re.compile(r"^Bought 0\.001 BTC at \$")])

    # A withdrawal beyond the cash is refused by the server: the amount field gets the focus and its message.
    cash = page.get_by_test_id("transfer-form")
    cash.get_by_role("radio", name="Withdrawal").check()
    cash.get_by_label("Amount (USD)").fill("$20,000")
    cash.get_by_role("button", name="Move cash").click()
    amount = page.get_by_test_id("transfer-form").get_by_label("Amount (USD)")
    expect(amount).to_be_focused()
    expect(amount).to_have_attribute("aria-invalid", "true")
    error = page.get_by_test_id("transfer-form").locator(".field-error")
    expect(error).to_have_count(1)
    expect(error).to_have_text(
        re.compile(r"^You can withdraw at most \$9,[0-9]{3}\.[0-9]{2} \(cash not held by open orders\)\.$")
    )
    described = amount.get_attribute("aria-describedby").split()
    assert error.get_attribute("id") in described
    expect_refused(page_guard, f"/portfolios/{portfolio.pk}/transfers/")
    save_screenshot(page, "forms-withdrawal-refused")

    # Editing the field clears its stale message; the amount as the page prints it is taken.
    amount.fill("$1,000.00")
    expect(error).to_have_count(0)
    expect(amount).not_to_have_attribute("aria-invalid", "true")
    page.get_by_test_id("transfer-form").get_by_role("button", name="Move cash").click()
    expect(page.locator("ul.messages li")).to_have_text(["Withdrew $1,000.00."])

    # The trade is found by symbol or name, in any case.
    page.goto("/trades/")
    search = page.get_by_test_id("trades-search")
    for text, rows in [("btc", 1), ("Bitco", 1), ("ETH", 0)]:
        search.fill(text)
        search.press("Enter")
        expect(page.locator("tbody tr[data-trade-id]")).to_have_count(rows)
    page_guard.assert_clean()


def test_the_alert_form_shows_the_input_its_kind_needs(page: Page, page_guard: PageGuard, alice, market) -> None:
    log_in(page, alice)
    page.goto("/alerts/")
    form = page.get_by_test_id("alert-form")
    price, change = form.get_by_label("Price", exact=True), form.get_by_label("24 h change", exact=True)
    condition = form.get_by_label("Condition")
    form.get_by_label("Coin").select_option("bitcoin")
    expect(price).to_be_visible()
    expect(change).to_be_hidden()
    expect(form.locator('[data-unit-for="id_price"]')).to_have_text("USD")

    condition.select_option("change_24h_below")
    expect(change).to_be_visible()
    expect(price).to_be_hidden()
    expect(form.locator('[data-unit-for="id_change"]')).to_have_text("%")

    # Sent without the number its kind needs: the error is beside that input, which has the focus.
    form.get_by_role("button", name="Create alert").click()
    change = page.get_by_test_id("alert-form").get_by_label("24 h change", exact=True)
    expect(change).to_be_focused()
    expect(page.locator('[data-field-error="change"]')).to_have_text("Enter the 24 h change in % that sets it off.")
    expect_refused(page_guard, "/alerts/new/")

    change.fill("-5")
    page.get_by_test_id("alert-form").get_by_role("button", name="Create alert").click()
    expect(page.locator("ul.messages li")).to_have_text(["Alert set: Bitcoin 24h change below (%)."])
    alert = Alert.objects.get(owner=alice)
    assert (alert.condition, alert.threshold) == ("change_24h_below", Decimal(-5))
    page_guard.assert_clean()


def test_a_delete_asks_first_with_and_without_javascript(
    page: Page, page_guard: PageGuard, browser: Browser, live_server, alice, market
) -> None:
    first = portfolio_services.save_watchlist(owner=alice, name="Majors", coin_ids=["bitcoin"])
    second = portfolio_services.save_watchlist(owner=alice, name="Minors", coin_ids=[])
    log_in(page, alice)
    page.goto("/watchlists/")
    page.wait_for_function("() => typeof window.htmx === 'object'")
    card = page.locator(f'[data-watchlist-id="{first.pk}"]')

    # With htmx the question takes the button's place; "Keep it" has the focus and keeps it.
    card.get_by_role("button", name="Delete").click()
    question = card.get_by_test_id("confirm-delete")
    expect(question).to_contain_text("Delete the watchlist “Majors”?")
    expect(question.get_by_test_id("confirm-delete-no")).to_be_focused()
    assert Watchlist.objects.filter(pk=first.pk).exists()
    question.get_by_test_id("confirm-delete-no").click()
    expect(page).to_have_url(re.compile(r"/watchlists/$"))
    assert Watchlist.objects.filter(pk=first.pk).exists()

    card.get_by_role("button", name="Delete").click()
    card.get_by_test_id("confirm-delete-yes").click()
    expect(page.locator("ul.messages li")).to_have_text(["Watchlist “Majors” deleted."])
    assert not Watchlist.objects.filter(pk=first.pk).exists()
    page_guard.assert_clean()

    # Without JavaScript the same button leads to a page that asks.
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    context.on("request", page_guard.on_request)
    context.on("response", page_guard.on_response)
    try:
        plain = context.new_page()
        log_in(plain, alice)
        plain.goto("/watchlists/")
        plain.locator(f'[data-watchlist-id="{second.pk}"]').get_by_role("button", name="Delete").click()
        expect(plain).to_have_url(re.compile(rf"/watchlists/{second.pk}/delete/$"))
        expect(plain.get_by_test_id("confirm-delete")).to_contain_text("Delete the watchlist “Minors”?")
        assert Watchlist.objects.filter(pk=second.pk).exists()
        plain.get_by_test_id("confirm-delete-yes").click()
        expect(plain.locator("ul.messages li")).to_have_text(["Watchlist “Minors” deleted."])
        assert not Watchlist.objects.filter(pk=second.pk).exists()
    finally:
        context.close()
    page_guard.assert_clean()


def test_a_double_click_on_run_backtest_makes_one_backtest(
    page: Page, page_guard: PageGuard, alice, market, monkeypatch
) -> None:
    strategy = strategy_services.create_strategy(
        owner=alice,
        coin=Coin.objects.get(pk="bitcoin"),
        name="Golden cross",
        kind="sma_crossover",
        params={"fast": 10, "slow": 30},
    )
    queue_backtest = strategy_services.queue_backtest

    def slow_queue_backtest(**arguments):
        time.sleep(1)  # a busy server: the page is still there for a person's second press
        return queue_backtest(**arguments)

    monkeypatch.setattr(strategy_services, "queue_backtest", slow_queue_backtest)  # the live server's thread too
    log_in(page, alice)
    page.goto(f"/strategies/{strategy.pk}/")
    posts = []
    page.on(
        "request",
        lambda request: posts.append(request.url)
        if request.method == "POST" and request.url.endswith(f"/strategies/{strategy.pk}/backtests/")
        else None,
    )
    # A person's double click can be slower than the page: its second press lands once the form is on its
    # way. The page itself presses again a moment later (the test cannot reach a page that is navigating away).
    page.evaluate(SECOND_PRESS)
    page.get_by_test_id("backtest-form").get_by_role("button", name="Run backtest").dblclick()
    expect(page).to_have_url(re.compile(rf"/backtests/{UUID}/$"))
    expect(page.get_by_test_id("backtest-results")).to_have_attribute("data-status", "succeeded", timeout=15_000)
    assert len(posts) == 1
    assert Backtest.objects.filter(strategy=strategy).count() == 1
    page_guard.assert_clean()
