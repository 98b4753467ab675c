"""Playwright fixtures: one headless Debian chromium per run, a fresh context per test, guards on every page."""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Playwright's own browser download is not available: drive the distribution's chromium, and keep it from
# phoning home so the foreign-request guard only ever sees what the pages asked for.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SHOTS_DIR = Path("/tmp/e2e-shots")  # noqa: S108 - a fixed, well-known place to look at them, outside the repo
DEFAULT_TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the e2e tests drive Debian's chromium. Install it with `apt-get install chromium`.",
            pytrace=False,
        )
    with pytest.MonkeyPatch.context() as patch:
        # Playwright's sync API keeps an asyncio loop running in the test thread, where Django would otherwise
        # refuse ORM calls (database setup, flushes, the test's own queries). Only for as long as it runs.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()


@dataclass
class PageGuard:
    """What the browser did that a healthy page never does: leave the origin, log errors, get error statuses."""

    origin: str
    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    error_responses: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    static_loaded: set[str] = field(default_factory=set)
    _reported: int = 0

    def _is_ours(self, url: str) -> bool:
        url = url.removeprefix("blob:")  # a blob: URL carries the origin that made it (a page's own worker)
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    def on_request(self, request: Request) -> None:
        if not self._is_ours(request.url):
            self.foreign_requests.append(f"{request.method} {request.url}")

    def on_response(self, response: Response) -> None:
        if not self._is_ours(response.url):
            return
        path = urlsplit(response.url).path
        if response.status >= 400:
            self.error_responses.append(f"{response.status} {response.request.method} {path}")
        elif path.startswith("/static/"):
            self.static_loaded.add(path)

    def on_request_failed(self, request: Request) -> None:
        self.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location
            self.console_errors.append(f"{message.text} ({location.get('url')}:{location.get('lineNumber')})")

    def on_page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))

    def problems(self) -> list[str]:
        return [
            *(f"request to another host: {entry}" for entry in self.foreign_requests),
            *(f"console error: {entry}" for entry in self.console_errors),
            *(f"uncaught page error: {entry}" for entry in self.page_errors),
            *(f"error response: {entry}" for entry in self.error_responses),
            *(f"failed request: {entry}" for entry in self.failed_requests),
        ]

    def assert_clean(self) -> None:
        problems = self.problems()
        self._reported = len(problems)
        assert not problems, "the browser misbehaved:\n" + "\n".join(problems)

    def unreported(self) -> list[str]:
        return self.problems()[self._reported :]


@pytest.fixture
def page_guard(live_server) -> PageGuard:
    parts = urlsplit(live_server.url)
    return PageGuard(origin=f"{parts.scheme}://{parts.netloc}")


@pytest.fixture
def page(browser: Browser, live_server, page_guard: PageGuard) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    # On the context, not the page: nothing it loads, from any page or worker, escapes the guard.
    context.on("request", page_guard.on_request)
    context.on("response", page_guard.on_response)
    context.on("requestfailed", page_guard.on_request_failed)
    new_page = context.new_page()
    new_page.on("console", page_guard.on_console)
    new_page.on("pageerror", page_guard.on_page_error)
    yield new_page
    context.close()
    # Anything the test did not get to assert (it failed first, or events landed after its last check).
    late = page_guard.unreported()
    assert not late, "the browser misbehaved:\n" + "\n".join(late)


@pytest.fixture
def save_screenshot() -> Callable[[Page, str], None]:
    """Full-page screenshots in /tmp/e2e-shots/ when E2E_SHOTS=1, for a human to look at."""
    enabled = os.environ.get("E2E_SHOTS") == "1"

    def save(page: Page, name: str) -> None:
        if enabled:
            SHOTS_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SHOTS_DIR / f"{name}.png", full_page=True)

    return save


def log_in(page: Page, email: str, password: str) -> None:
    """Log in through the browser form and land on the dashboard."""
    page.goto("/login/")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/dashboard/")


@contextlib.contextmanager
def guarded_page(browser: Browser, base_url: str, guard: PageGuard) -> Iterator[Page]:
    """A page in a fresh context on `base_url` (any server, not only live_server), watched by `guard` as `page` is."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    context.on("request", guard.on_request)
    context.on("response", guard.on_response)
    context.on("requestfailed", guard.on_request_failed)
    new_page = context.new_page()
    new_page.on("console", guard.on_console)
    new_page.on("pageerror", guard.on_page_error)
    try:
        yield new_page
    finally:
        context.close()
    late = guard.unreported()
    assert not late, "the browser misbehaved:\n" + "\n".join(late)
