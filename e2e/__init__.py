"""Browser journeys driving Debian chromium through Playwright against the live server."""
