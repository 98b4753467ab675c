"""The API docs in a browser: Swagger UI and ReDoc draw every operation under the site's Content Security Policy, from
assets this app serves, with no console error; the relaxations they need stay on their own two pages."""

import re

import pytest
from playwright.sync_api import Page, expect

from .conftest import PageGuard
from .test_accessibility import AXE_SOURCE, BLOCKING, RUN_AXE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

COINS = re.compile(r"^/api/v1/coins/$")  # the coin list: open to anyone, so the page can try it unauthenticated


def blocking_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (operations opened, answers drawn)."""
    page.evaluate(AXE_SOURCE)
    return [f"{rule['id']}: {rule['nodes'][:3]}" for rule in page.evaluate(RUN_AXE) if rule["impact"] in BLOCKING]


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_swagger_ui_draws_the_operations_under_a_nonce_policy(page: Page, page_guard: PageGuard) -> None:
    response = page.goto("/api/docs/")
    assert response is not None
    assert response.status == 200
    policy = directives(response.headers["content-security-policy"])
    nonces = [value for value in policy["script-src"] if value.startswith("'nonce-")]
    assert policy["script-src"] == ["'self'", *nonces]
    assert len(nonces) == 1
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]

    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() > 40
    expect(page.locator(".opblock-post .opblock-summary-path", has_text="/api/v1/orders/").first).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert all(path.startswith("/static/") for path in page_guard.static_loaded)

    # One operation tried from the page: its request goes out with the page's own script, the answer is drawn.
    coins = operations.filter(has=page.locator(".opblock-summary-path", has_text=COINS))
    coins.locator(".opblock-summary-control").click()
    coins.get_by_role("button", name="Try it out").click()
    coins.get_by_role("button", name="Execute").click()
    expect(coins.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    assert blocking_violations(page) == []
    page_guard.assert_clean()


def test_redoc_draws_the_operations_with_search_in_a_worker(page: Page, page_guard: PageGuard) -> None:
    response = page.goto("/api/redoc/")
    assert response is not None
    assert response.status == 200
    policy = directives(response.headers["content-security-policy"])
    assert policy["worker-src"] == ["blob:"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]

    sections = page.locator("[data-section-id^='operation/']")
    expect(sections.first).to_be_attached(timeout=15_000)
    assert sections.count() > 40
    expect(page.get_by_role("heading", name="CryptoDesk API")).to_be_visible()
    search = page.get_by_placeholder("Search...")
    search.fill("orders")
    expect(page.locator("[data-role='search:results'] li").first).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert blocking_violations(page) == []
    page_guard.assert_clean()


def test_other_pages_keep_the_strict_policy(page: Page, page_guard: PageGuard) -> None:
    response = page.goto("/login/")
    assert response is not None
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert "worker-src" not in policy
    page_guard.assert_clean()
