"""A real ASGI server (uvicorn) in its own process, serving this project against the test database this run made."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def this_runs_database_url() -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@contextlib.contextmanager
def asgi_server(
    *, environ: dict[str, str] | None = None, application: str = "cryptodesk.asgi:application", factory: bool = False
) -> Iterator[dict]:
    """uvicorn on a free port; yields its `url` (http), `ws` (the socket's URL), `origin` and `log` path.

    On leaving, the server's log must hold no traceback: bad input never crashes a handler nor logs one.
    """
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cryptodesk.settings_test",
        "DATABASE_URL": this_runs_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",  # the test database is flushed after each test: hold no connection open
        **(environ or {}),
    }
    command = [
        *(sys.executable, "-m", "uvicorn", application, *(["--factory"] if factory else [])),
        *("--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-access-log"),
        *("--ws", "websockets-sansio", "--ws-max-size", str(16 * 1024 * 1024)),
    ]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"cryptodesk-asgi-{port}.log"  # noqa: S108
    with log_path.open("w+") as log:
        server = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(f"uvicorn did not start:\n{log.read()}")
                    time.sleep(0.1)
            origin = f"http://127.0.0.1:{port}"
            yield {"url": origin, "ws": f"ws://127.0.0.1:{port}/ws/v1/", "origin": origin, "log": log_path}
        finally:
            server.terminate()
            server.wait(timeout=10)
    log_text = log_path.read_text()
    log_path.unlink()
    assert "Traceback" not in log_text, log_text
