"""Every page at a laptop and a phone size, checked by axe-core: no serious or critical violation, nothing off-screen,
no console error, no request to another host. Also the phone layout: a header menu, the order ticket early."""

from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from playwright.sync_api import Page, Request, expect

from accounts.models import User
from accounts.services import DEMO_EMAIL, DEMO_PASSWORD
from accounts.tokens import make_email_verification_token, make_password_reset_token
from market.models import Quote
from portfolios.models import Alert, Portfolio
from portfolios.services import notify_alert
from strategies.models import Backtest
from strategies.services import start_paper_run

from .conftest import PageGuard
from .conftest import log_in as log_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE_VERSION = "4.14.1"
AXE_SOURCE = (Path(settings.BASE_DIR) / "static" / "vendor" / f"axe-core-{AXE_VERSION}.min.js").read_text()
SIZES = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
BLOCKING = ("serious", "critical")
# axe's verdicts on what the page shows once it has settled; the result summarised per rule, blocking ones in full
RUN_AXE = """
async () => {
  const results = await window.axe.run(document, {resultTypes: ["violations"], iframes: false});
  return results.violations.map((rule) => ({
    id: rule.id,
    impact: rule.impact,
    help: rule.help,
    nodes: rule.nodes.map((node) => node.target.join(" ") + " :: " + node.failureSummary.replace(/\\s+/g, " ")),
  }));
}
"""
# Wider than the window: something sits off-screen (a row of links, a table without a scroll box of its own).
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll("body *")].filter((element) => {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1) return false;
    for (let parent = element.parentElement; parent; parent = parent.parentElement) {
      const overflow = getComputedStyle(parent).overflowX;
      if (overflow === "auto" || overflow === "scroll" || overflow === "hidden") return false;
    }
    return true;
  });
  return {scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5).map((el) => el.outerHTML.slice(0, 120))};
}
"""


@dataclass
class Visit:
    name: str
    size: str
    blocking: list[dict] = field(default_factory=list)
    other: list[dict] = field(default_factory=list)
    overflow: dict | None = None

    def line(self) -> str:
        rules = ", ".join(f"{rule['id']} ({rule['impact']}, {len(rule['nodes'])})" for rule in self.blocking)
        return f"{self.name:<22} {self.size:<8} serious/critical rules: {len(self.blocking)}  {rules}"


@dataclass
class Walk:
    page: Page
    guard: PageGuard
    visits: list[Visit] = field(default_factory=list)
    pending: set[Request] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.page.on("request", lambda request: self.pending.add(request))
        self.page.on("requestfinished", lambda request: self.pending.discard(request))
        self.page.on("requestfailed", lambda request: self.pending.discard(request))

    def settle(self, ready: str | None) -> None:
        """Until the page's own fetches (chart series, the schema) are done: quicker than waiting for network idle."""
        quiet = 0
        for _ in range(200):
            quiet = quiet + 1 if not self.pending else 0
            if quiet == 2:
                break
            self.page.wait_for_timeout(25)
        if ready:
            expect(self.page.locator(ready).first).to_be_attached(timeout=15_000)

    def check(self, name: str, path: str, *, status: int = 200, ready: str | None = None) -> Visit:
        response = self.page.goto(path)
        assert response is not None
        assert response.status == status, f"{name}: {path} answered {response.status}"
        if status >= 400:
            # the page itself is meant to be an error: that one response, and the browser's note of it, are expected
            self.guard.error_responses.remove(f"{status} GET {path}")
            note = f"the server responded with a status of {status} (Not Found) ({self.guard.origin}{path}:0)"
            self.guard.console_errors.remove(f"Failed to load resource: {note}")
        self.settle(ready)
        self.page.evaluate(AXE_SOURCE)
        violations = self.page.evaluate(RUN_AXE)
        size = next(label for label, box in SIZES.items() if box == self.page.viewport_size)
        visit = Visit(
            name=name,
            size=size,
            blocking=[rule for rule in violations if rule["impact"] in BLOCKING],
            other=[rule for rule in violations if rule["impact"] not in BLOCKING],
        )
        layout = self.page.evaluate(OVERFLOW)
        if layout["scrollWidth"] > layout["width"] or layout["wide"]:
            visit.overflow = layout
        self.visits.append(visit)
        return visit

    def report(self) -> str:
        lines = [visit.line() for visit in self.visits]
        for visit in self.visits:
            for rule in visit.blocking:
                lines.append(f"  {visit.name} [{visit.size}] {rule['id']}: {rule['help']}")
                lines.extend(f"    {node}" for node in rule["nodes"][:4])
            if visit.overflow:
                lines.append(f"  {visit.name} [{visit.size}] wider than the window: {visit.overflow}")
        return "\n".join(lines)


def seed_every_page() -> dict[str, str]:
    """The demo desk (market, portfolio with trades, watchlist, alert, a backtested strategy) plus what the rest of
    the pages need: a notification, a strategy trading on paper, links from a reset and a confirmation email."""
    call_command("seed_demo", stdout=StringIO())
    user = User.objects.get(email=DEMO_EMAIL)
    portfolio = Portfolio.objects.filter(owner=user).earliest("pk")
    backtest = Backtest.objects.filter(strategy__owner=user, status=Backtest.Status.SUCCEEDED).earliest("created_at")
    strategy = backtest.strategy
    alert = Alert.objects.filter(owner=user).earliest("pk")
    notify_alert(alert, Quote.objects.get(coin_id=alert.coin_id))
    run = start_paper_run(strategy=strategy, user=user, portfolio=portfolio)
    newcomer = User.objects.create_user("newcomer@example.com", "unused-passphrase-42", display_name="Newcomer")
    uid, token = make_password_reset_token(newcomer)
    return {
        "reset": f"/password/reset/{uid}/{token}/",
        "verify": f"/verify-email/?token={make_email_verification_token(newcomer)}",
        "portfolio": f"/portfolios/{portfolio.pk}/",
        "strategy": f"/strategies/{strategy.pk}/",
        "strategy_edit": f"/strategies/{strategy.pk}/edit/",
        "backtest": f"/backtests/{backtest.pk}/",
        "paper_run": f"/paper-runs/{run.pk}/",
    }


def log_in(page: Page) -> None:
    log_in_as(page, DEMO_EMAIL, DEMO_PASSWORD)


def test_every_page_has_no_serious_accessibility_violation_at_either_size(page: Page, page_guard: PageGuard) -> None:
    paths = seed_every_page()
    anonymous = [
        ("login", "/login/", 200),
        ("register", "/register/", 200),
        ("password forgot", "/password/forgot/", 200),
        ("password reset", paths["reset"], 200),
        ("verify email", paths["verify"], 200),
    ]
    signed_in = [
        ("dashboard", "/dashboard/", 200),
        ("markets", "/markets/", 200),
        ("coin detail", "/markets/bitcoin/", 200),
        ("portfolios", "/portfolios/", 200),
        ("portfolio detail", paths["portfolio"], 200),
        ("trades", "/trades/", 200),
        ("watchlists", "/watchlists/", 200),
        ("alerts", "/alerts/", 200),
        ("notifications", "/notifications/", 200),
        ("strategies", "/strategies/", 200),
        ("strategy detail", paths["strategy"], 200),
        ("strategy form", "/strategies/new/", 200),
        ("strategy edit", paths["strategy_edit"], 200),
        ("backtest result", paths["backtest"], 200),
        ("paper runs", "/paper-runs/", 200),
        ("paper run", paths["paper_run"], 200),
        ("settings", "/settings/", 200),
        ("swagger ui", "/api/docs/", 200, ".opblock"),
        ("redoc", "/api/redoc/", 200, "[data-section-id^='operation/']"),
        ("not found", "/no-such-page/", 404),
    ]
    walk = Walk(page=page, guard=page_guard)
    for pages in (anonymous, signed_in):
        if pages is signed_in:
            log_in(page)
        for size in SIZES.values():
            page.set_viewport_size(size)
            for name, path, status, *ready in pages:
                walk.check(name, path, status=status, ready=ready[0] if ready else None)

    print("\n" + walk.report())  # the per-page counts, for whoever runs it with -s
    failing = [visit for visit in walk.visits if visit.blocking or visit.overflow]
    assert not failing, "\n" + walk.report()
    page_guard.assert_clean()


def test_phone_header_folds_into_a_menu_and_the_laptop_header_stays_on_one_line(
    page: Page, page_guard: PageGuard
) -> None:
    call_command("seed_demo", stdout=StringIO())
    log_in(page)

    page.set_viewport_size(SIZES["desktop"])
    page.goto("/dashboard/")
    header = page.locator("header.topbar")
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_hidden()
    links = header.get_by_role("navigation", name="Main").get_by_role("link")
    tops = {round(box["y"]) for box in (link.bounding_box() for link in links.all()) if box}
    assert len(tops) == 1, f"the main links sit on {len(tops)} lines at 1366 px"
    # brand, links and the buttons at the end share one row, none of them pushed below another
    rows = header.evaluate(
        "(bar) => [...bar.children].filter((el) => el.offsetParent).map((el) => el.getBoundingClientRect())"
        ".map((box) => [box.top, box.bottom])"
    )
    assert max(top for top, _ in rows) < min(bottom for _, bottom in rows), rows

    page.set_viewport_size(SIZES["phone"])
    page.goto("/dashboard/")
    nav = header.get_by_role("navigation", name="Main")
    expect(menu).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(nav.get_by_role("link", name="Portfolios")).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    portfolios = nav.get_by_role("link", name="Portfolios")
    expect(portfolios).to_be_visible()
    expect(portfolios).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()
    expect(portfolios).to_be_hidden()
    menu.click()
    portfolios.click()
    page.wait_for_url("**/portfolios/")
    page_guard.assert_clean()


def test_phone_reaches_the_order_ticket_from_the_top_and_reads_whole_prices(page: Page, page_guard: PageGuard) -> None:
    call_command("seed_demo", stdout=StringIO())
    portfolio = Portfolio.objects.filter(owner__email=DEMO_EMAIL).earliest("pk")
    log_in(page)
    page.set_viewport_size(SIZES["phone"])

    # A skip link first, then straight to the ticket: the keyboard needs no trip through charts and tables.
    page.goto(f"/portfolios/{portfolio.pk}/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    jump = page.get_by_role("link", name="Trade", exact=True)
    expect(jump).to_be_in_viewport()
    jump.click()
    ticket = page.locator("#ticket")
    expect(ticket).to_be_in_viewport()
    page.keyboard.press("Tab")
    assert ticket.evaluate("(ticket) => ticket.contains(document.activeElement)")

    # The markets table keeps the coin, its price and the day's change on screen, none of them clipped: the table
    # fits its box (nothing to scroll sideways) and those cells sit inside the window's width.
    page.goto("/markets/")
    table = page.get_by_test_id("coin-table")
    assert table.evaluate("(table) => table.parentElement.scrollWidth <= table.parentElement.clientWidth")
    width = SIZES["phone"]["width"]
    columns = [name.strip().lower() for name in table.locator("thead th").all_text_contents()]
    for row in table.locator("tbody tr").all()[:10]:
        for column in ("coin", "price", "24h"):
            cell = row.locator("td").nth(next(i for i, name in enumerate(columns) if name.startswith(column)))
            box = cell.bounding_box()
            assert box is not None, f"the {column} column is hidden"
            assert box["x"] >= 0, (column, box)
            assert box["x"] + box["width"] <= width + 0.5, (column, box)
            assert cell.evaluate("(el) => el.scrollWidth <= el.clientWidth"), cell.inner_text()
    page_guard.assert_clean()
