"""Settings fail fast: one line naming the variable, never its value."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


_OURS = ("DJANGO_", "DATABASE_", "SECRET", "DEBUG", "SECURE_", "SESSION_COOKIE", "CSRF_COOKIE", "THROTTLE_")


def _inherited() -> dict[str, str]:
    """The parent's environment without anything that configures CryptoDesk (the test settings set some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}


def run_check(**env: str) -> subprocess.CompletedProcess:
    clean = _inherited()
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "cryptodesk.settings"
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_missing_secret_key_with_debug_off_stops_startup():
    result = run_check(DEBUG="0")
    assert result.returncode != 0
    assert result.stderr.strip() == "config error: SECRET_KEY is required when DEBUG is off"


def test_malformed_database_url_stops_startup_without_echoing_it():
    result = run_check(DEBUG="1", DATABASE_URL="notadb://user:s3cret-pw@host/db")
    assert result.returncode != 0
    assert result.stderr.strip() == "config error: DATABASE_URL is not a valid database URL"
    assert "s3cret-pw" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("name", "value"), [("DEBUG", "maybe"), ("SECURE_HSTS_SECONDS", "soon"), ("MARKET_STALE_AFTER", "fortnight")]
)
def test_malformed_values_name_the_variable(name, value):
    result = run_check(**{"DEBUG": "1", name: value})
    assert result.returncode != 0
    assert result.stderr.strip().startswith(f"config error: {name} ")


def test_deploy_check_is_clean_with_debug_off():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **_inherited(),
            "DJANGO_SETTINGS_MODULE": "cryptodesk.settings",
            "DEBUG": "0",
            "SECRET_KEY": "a-deploy-check-key-that-is-long-and-random-enough-0123456789abcdef",
            "SECURE_HSTS_SECONDS": "31536000",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
