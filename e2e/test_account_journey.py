"""A new user's first visits: register, confirm the email, come back, and log out a forgotten API session."""

import base64
import json
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from accounts.models import DeviceSession, User

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EMAIL = "carol@example.com"
DISPLAY_NAME = "Carol"
PASSWORD = "violet-ledger-compass-42"
API_USER_AGENT = "desk-cli/1.0"
STATIC_ASSETS = {
    "/static/css/app.css",
    "/static/js/app.js",
    "/static/vendor/htmx-2.0.4.min.js",
    "/static/img/logo.svg",
}
VERIFY_LINK = re.compile(r"^(http://\S+/verify-email/\?token=\S+)$", re.MULTILINE)


def session_id_of(access_token: str) -> str:
    """The device session a JWT is bound to (its sid claim); the signature is the server's business."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def expect_messages(page: Page, *texts: str) -> None:
    expect(page.locator("ul.messages li")).to_have_text(list(texts))


def expect_assets_working(page: Page, guard: PageGuard) -> None:
    """The stylesheet and both scripts were served and are in effect."""
    expect(page.locator("header.topbar")).to_have_css("display", "flex")
    page.wait_for_function("() => typeof window.htmx === 'object'")
    assert guard.static_loaded == STATIC_ASSETS
    theme = page.locator("html").get_attribute("data-theme")
    page.get_by_role("button", name="Switch between light and dark theme").click()
    expect(page.locator("html")).not_to_have_attribute("data-theme", theme or "")


def test_register_verify_log_in_and_revoke_the_api_session(
    page: Page, page_guard: PageGuard, live_server, mailoutbox, save_screenshot
) -> None:
    base = live_server.url

    # Registration refuses a weak password, beside the password field only.
    page.goto("/register/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Create your desk")
    expect_assets_working(page, page_guard)
    page.locator("input[name=email]").fill(EMAIL)
    page.locator("input[name=display_name]").fill(DISPLAY_NAME)
    page.locator("input[name=password]").fill("12345678")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("[data-field-error=password]")).to_have_text(
        ["This password is too common.", "This password is entirely numeric."]
    )
    expect(page.locator("[data-field-error]")).to_have_count(2)
    expect(page).to_have_url(f"{base}/register/")
    assert not User.objects.filter(email=EMAIL).exists()
    assert mailoutbox == []

    # The form kept what was typed, except the password.
    expect(page.locator("input[name=email]")).to_have_value(EMAIL)
    expect(page.locator("input[name=password]")).to_have_value("")
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(f"{base}/dashboard/")
    expect_messages(page, f"Welcome to CryptoDesk! We sent a confirmation link to {EMAIL}.")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Good to see you, {DISPLAY_NAME}")
    expect(page.locator(".alert-warning")).to_contain_text(f"Please confirm {EMAIL}: we sent you a link.")

    # The confirmation link from the email.
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == [EMAIL]
    assert email.subject == "Confirm your CryptoDesk email address"
    links = VERIFY_LINK.findall(email.body)
    assert len(links) == 1, email.body
    assert links[0].startswith(f"{base}/verify-email/?token=")
    page.goto(links[0])
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your email")
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page).to_have_url(f"{base}/dashboard/")
    expect_messages(page, "Your email address is confirmed.")
    expect(page.locator(".card.stat", has_text="Account")).to_contain_text("Email confirmed")
    expect(page.locator(".alert-warning")).to_have_count(0)
    assert User.objects.get(email=EMAIL).email_verified

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{base}/login/")
    expect_messages(page, "You have been logged out.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in")
    expect(page.get_by_test_id("logout")).to_have_count(0)

    # Another device: a script logging in through the API.
    with httpx.Client(base_url=base, headers={"User-Agent": API_USER_AGENT}, trust_env=False, timeout=10) as api:
        response = api.post("/api/v1/auth/token/", json={"email": EMAIL, "password": PASSWORD})
        assert response.status_code == 200, response.text
        tokens = response.json()
        api_session_id = session_id_of(tokens["access"])
        me = api.get("/api/v1/me/", headers={"Authorization": f"Bearer {tokens['access']}"})
        assert me.status_code == 200, me.text
        assert me.json()["email"] == EMAIL

    page.locator("input[name=email]").fill(EMAIL)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/dashboard/")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Good to see you, {DISPLAY_NAME}")
    expect(page.locator("ul.messages")).to_have_count(0)
    # This browser and the API client: the registration's browser session ended at logout.
    expect(page.locator(".card.stat", has_text="Active sessions").locator(".stat-value")).to_have_text("2")
    save_screenshot(page, "dashboard")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(f"{base}/settings/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    rows = page.get_by_test_id("sessions").locator("tbody tr")
    expect(rows).to_have_count(2)
    this_device = rows.filter(has=page.locator(".badge", has_text="This device"))
    api_row = page.locator(f'tr[data-session-id="{api_session_id}"]')
    expect(this_device).to_have_count(1)
    expect(this_device.locator("td").nth(1)).to_have_text("Browser")
    expect(this_device.get_by_role("button")).to_have_count(0)
    expect(api_row.locator("td").nth(0)).to_have_text(API_USER_AGENT)
    expect(api_row.locator("td").nth(1)).to_have_text("API client")
    expect(api_row.locator("td").nth(2)).to_have_text("127.0.0.1")
    expect(api_row.get_by_role("button")).to_have_text(["Revoke"])
    save_screenshot(page, "settings")

    api_row.get_by_role("button", name="Revoke").click()
    expect(page).to_have_url(f"{base}/settings/")
    expect_messages(page, "Session revoked: that device is logged out.")
    expect(api_row).to_have_count(0)
    expect(rows).to_have_count(1)
    expect(rows.locator(".badge")).to_have_text("This device")

    # The API client is out: its refresh token no longer mints tokens and its access token is refused.
    with httpx.Client(base_url=base, headers={"User-Agent": API_USER_AGENT}, trust_env=False, timeout=10) as api:
        refreshed = api.post("/api/v1/auth/token/refresh/", json={"refresh": tokens["refresh"]})
        assert refreshed.status_code == 401, refreshed.text
        assert refreshed.json()["detail"] == "This session has ended. Log in again."
        me = api.get("/api/v1/me/", headers={"Authorization": f"Bearer {tokens['access']}"})
        assert me.status_code == 401, me.text
        assert me.json()["detail"] == "This session has ended. Log in again."

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(f"{base}/login/")
    expect_messages(page, "You have been logged out.")
    page.goto("/dashboard/")
    expect(page).to_have_url(f"{base}/login/?next=/dashboard/")

    assert sorted(DeviceSession.objects.filter(user__email=EMAIL).values_list("kind", "revoked_reason")) == [
        ("api", "revoked by user"),
        ("browser", "logout"),
        ("browser", "logout"),
    ]
    page_guard.assert_clean()
