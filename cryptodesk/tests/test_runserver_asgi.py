"""`make run`'s server: pages, API, static files and the `/ws/v1/` socket from one `runserver` (ASGI); `--wsgi` too."""

import contextlib
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from accounts.services import DEMO_EMAIL, DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ANNOUNCED = "answers on"
SETUP = (  # one process: migrate, then the demo login the announcement offers
    "from django.core.management import call_command\n"
    "from accounts.services import ensure_demo_user\n"
    "call_command('migrate', interactive=False, verbosity=0)\n"
    "ensure_demo_user()\n"
)


def _without_our_environment() -> dict[str, str]:
    ours = ("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "SECRET", "DEBUG", "DEMO_", "COINGECKO_", "RUN_SCHEDULE")
    return {name: value for name, value in os.environ.items() if not name.startswith(ours)}


@pytest.fixture(scope="module")
def desk_env(tmp_path_factory) -> dict[str, str]:
    """`make run`'s environment on a migrated SQLite file of its own: no Redis, no broker, DEBUG on."""
    database = tmp_path_factory.mktemp("runserver") / "desk.sqlite3"
    env = {
        **_without_our_environment(),
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{database}",
        "COINGECKO_BASE_URL": "http://127.0.0.1:9/api/v3",  # nothing listens there: no job leaves the machine
        "PYTHONUNBUFFERED": "1",
    }
    setup = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "shell", "-c", SETUP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert setup.returncode == 0, setup.stderr
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _runserver(env: dict[str, str], *options: str) -> Iterator[tuple[int, list[str]]]:
    """`manage.py runserver --noreload` on a free port, once it has announced itself; yields (port, output lines)."""
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "runserver", "--noreload", *options, f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in server.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly; a healthy one in about 2 s
        while not any(ANNOUNCED in line for line in seen):
            assert server.poll() is None, "\n".join(seen)
            assert time.monotonic() < deadline, "\n".join(seen)
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.1))
        yield port, seen
        time.sleep(0.2)  # the last requests' log lines
        while not lines.empty():
            seen.append(lines.get())
    finally:
        server.terminate()  # --noreload: one process
        server.wait(timeout=10)


def _request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_runserver_serves_pages_api_static_files_and_the_socket(desk_env):
    with _runserver(desk_env) as (port, seen):
        assert _request(port, "GET", "/health")[0] == 200
        status, script = _request(port, "GET", "/static/js/app.js")
        assert status == 200
        assert script == (ROOT / "static" / "js" / "app.js").read_bytes()
        status, tokens = _request(port, "POST", "/api/v1/auth/token", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        assert status == 200, tokens
        with connect(f"ws://127.0.0.1:{port}/ws/v1/", open_timeout=5) as ws:
            ws.send(json.dumps({"type": "auth", "token": json.loads(tokens)["access"]}))
            assert json.loads(ws.recv(timeout=5))["type"] == "authenticated"
            ws.send(json.dumps({"type": "ping"}))
            assert json.loads(ws.recv(timeout=5)) == {"type": "pong"}
    output = "\n".join(seen)
    url = f"http://127.0.0.1:{port}/"
    assert f"CryptoDesk answers on {url} — demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}" in seen, output
    assert output.count(ANNOUNCED) == 1, output
    assert "System check identified no issues" in output, output  # Django's checks, then its banner
    assert "unapplied migration" not in output, output
    assert output.index("Quit the server with") < output.index("GET /health") < output.index(ANNOUNCED), output
    assert output.count("Scheduled jobs run inside this server") == 1, output
    assert "GET /static/js/app.js" in output, output
    assert "synchronous iterators" not in output, output  # static files by the ASGI handler, not buffered by Django
    assert "Traceback" not in output, output


def test_runserver_wsgi_keeps_django_own_server_without_the_socket(desk_env):
    with _runserver(desk_env, "--wsgi") as (port, seen):
        assert _request(port, "GET", "/health")[0] == 200
        with pytest.raises(InvalidStatus), connect(f"ws://127.0.0.1:{port}/ws/v1/", open_timeout=5):
            pass
    output = "\n".join(seen)
    assert f"CryptoDesk answers on http://127.0.0.1:{port}/" in output, output
    assert "Quit the server with" in output, output
    assert "Traceback" not in output, output
