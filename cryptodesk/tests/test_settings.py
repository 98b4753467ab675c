"""Settings fail fast: one line naming the variable, never its value."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


_OURS = ("DJANGO_", "DATABASE_", "SECRET", "DEBUG", "SECURE_", "SESSION_COOKIE", "CSRF_COOKIE", "THROTTLE_")


def _inherited() -> dict[str, str]:
    """The parent's environment without anything that configures CryptoDesk (the test settings set some)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}


def run_check(**env: str) -> subprocess.CompletedProcess:
    clean = _inherited()
    clean["SECRET_KEY_FILE"] = str(Path(tempfile.gettempdir()) / "cryptodesk-check.secret_key")  # not the checkout's
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "cryptodesk.settings"
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_missing_secret_key_with_debug_off_stops_startup():
    result = run_check(DEBUG="0")
    assert result.returncode != 0
    assert result.stderr.strip() == "config error: SECRET_KEY is required when DEBUG is off"


def _manage(*argv: str) -> subprocess.CompletedProcess:
    """manage.py with no CryptoDesk environment at all, as a fresh checkout runs it."""
    env = {**_inherited(), "SECRET_KEY_FILE": str(Path(tempfile.gettempdir()) / "cryptodesk-offline.secret_key")}
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_migration_commands_need_no_secret_key():
    """makemigrations reads models and migration files only: nothing is signed, so no key is asked for."""
    result = _manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_commands_that_serve_or_sign_still_need_the_key():
    result = _manage("check")
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


def _development_key(key_file: Path) -> subprocess.Popen:
    env = _inherited()
    env.update(DEBUG="1", SECRET_KEY_FILE=str(key_file))
    return subprocess.Popen(  # noqa: S603 - our own interpreter importing our settings
        [sys.executable, "-c", "from cryptodesk import settings; print(settings.SECRET_KEY)"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _keys(processes: list[subprocess.Popen]) -> list[str]:
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in outputs]
    return [out.strip() for out, _ in outputs]


def test_debug_without_secret_key_uses_one_stable_development_key(tmp_path):
    key_file = tmp_path / ".secret_key"
    first = _keys([_development_key(key_file)])
    second = _keys([_development_key(key_file)])
    assert first == second
    assert len(first[0]) >= 50
    assert key_file.read_text().strip() == first[0]
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_workers_starting_together_agree_on_the_development_key(tmp_path):
    key_file = tmp_path / ".secret_key"
    keys = _keys([_development_key(key_file) for _ in range(6)])
    assert len(set(keys)) == 1
    assert key_file.read_text().strip() == keys[0]


def test_the_development_key_file_is_ignored_by_git():
    assert ".secret_key" in (ROOT / ".gitignore").read_text().split()
