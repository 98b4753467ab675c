"""A real Celery worker, over the real broker, runs a task against the real database."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import DeviceSession
from accounts.tasks import purge_expired_sessions_task
from conftest import make_user
from cryptodesk.celery import app

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs a broker: set REDIS_URL (CI does)"),
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
        reason="the worker is another process: needs a shared database server (set DATABASE_URL; CI does)",
    ),
]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker_queue():
    """Start a worker on a queue of its own, so no other worker can take our task."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DATABASE_URL": _database_url(),  # the test database this test writes to
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running celery
        [sys.executable, "-m", "celery", "-A", "cryptodesk", "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def stop() -> str:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return output

    try:
        yield queue, stop
    finally:
        if process.poll() is None:
            stop()


@pytest.mark.django_db(transaction=True)
def test_worker_purges_expired_sessions(worker_queue):
    queue, stop_worker = worker_queue
    user = make_user("worker@example.com")
    now = timezone.now()
    long_ago = now - timedelta(days=3)
    expired = DeviceSession.objects.create(user=user, kind="api", created_at=long_ago, expires_at=long_ago)
    live = DeviceSession.objects.create(user=user, kind="api", expires_at=now + timedelta(days=7))

    # send_task always goes through the broker (the test settings run .delay() eagerly)
    result = app.send_task(purge_expired_sessions_task.name, queue=queue)

    deadline = time.monotonic() + 60
    while DeviceSession.objects.filter(pk=expired.pk).exists():
        assert time.monotonic() < deadline, "the worker did not run the task within 60 s"
        time.sleep(0.25)
    assert DeviceSession.objects.filter(pk=live.pk).exists()
    log = stop_worker()
    assert f"Task accounts.tasks.purge_expired_sessions_task[{result.id}] succeeded" in log
