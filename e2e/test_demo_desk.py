"""The demo desk in a browser: the login the page offers works, the ticker moves prices, an alert rings the bell."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from cryptodesk import scheduler
from market.models import Quote
from portfolios.models import Alert

from .conftest import PageGuard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

T0 = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)  # the next due time, 12:01, runs the every-minute jobs only


def test_the_demo_desk_from_the_login_hint_to_an_alert_in_the_bell(page: Page, page_guard: PageGuard, settings):
    settings.DEBUG = True  # the development server's demo
    settings.DEMO_TICKER = True
    call_command("seed_demo", stdout=StringIO())

    page.goto("/login/")
    hint = page.get_by_test_id("demo-login")
    expect(hint).to_be_visible()
    email, password = hint.locator("code").all_inner_texts()
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/")
    expect(page.get_by_test_id("freshness")).to_contain_text("Prices updated")
    expect(page.get_by_test_id("unread-count")).to_have_count(0)

    before = Quote.objects.get(coin_id="bitcoin").current_price
    # The seeded alerts sit half a percent away, minutes of ticking; one tick must do here, so they close in.
    Alert.objects.filter(owner__email=email, coin_id="bitcoin").update(threshold=before)
    jobs = scheduler.Scheduler(settings.CELERY_BEAT_SCHEDULE, now=T0)
    assert jobs.run_due(T0 + timedelta(seconds=30)) == ["demo-ticker", "relay-outbox"]
    after = Quote.objects.get(coin_id="bitcoin").current_price
    assert after != before
    condition = "price above" if after > before else "price below"

    page.reload()
    expect(page.get_by_test_id("unread-count")).to_have_text("1")
    expect(page.get_by_test_id("freshness")).to_contain_text("Prices updated")
    page.get_by_test_id("bell").click()
    page.wait_for_url("**/notifications/")
    expect(page.get_by_text(f"Bitcoin: {condition} {before.normalize():f}")).to_be_visible()
    page_guard.assert_clean()
