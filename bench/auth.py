"""Auth bench: JWT-authenticated GET /api/v1/me/ against a constant view under gunicorn, and its queries per request."""

import logging
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/auth.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cryptodesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
SETTINGS_MODULE = "bench.settings"
# High enough never to refuse; per second because DRF keeps one timestamp per request of the window in the
# cache and re-pickles that list on every request: a minute of this load would grow it without bound.
THROTTLE_OFF = "10000000/s"

EMAIL = "bench@cryptodesk.local"
ME_PATH = "/api/v1/me/"
CONSTANT_PATH = "/bench/constant/"

WORKERS = 2  # the machine has two cores
THREADS_PER_WORKER = 2
CLIENT_THREADS = 4  # one keep-alive connection per gunicorn thread
WARMUP_S = 2.0
ROUND_S = 5.0
ROUNDS = 5
MAX_REQUESTS_PER_THREAD = 100_000  # a count bound as well as a time bound
START_TIMEOUT_S = 30.0
MIGRATE_TIMEOUT_S = 90.0
QUERY_SAMPLES = 20

TARGET_RATIO = 0.5
TARGET_QUERIES = 1.0


@dataclass(frozen=True)
class Load:
    """One load run: how many requests succeeded, over how long, and what the generator itself burnt."""

    requests: int
    failures: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_cpu_share(self) -> float:
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / self.requests if self.requests else 0.0


def require_loopback(name: str, url: str) -> None:
    """The bench hammers what it is pointed at: only ever local services."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"auth bench: {name} must point at 127.0.0.1 (got host {host!r})")


def ensure_database(database_url: str) -> None:
    """Create the bench database if missing; CREATE DATABASE cannot run inside the target database itself."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    maintenance_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=MIGRATE_TIMEOUT_S,
    )


def ensure_bench_user(password: str) -> None:
    """Idempotent: the same account every run, with this run's password."""
    from accounts.models import User

    user = User.objects.filter(email=EMAIL).first()
    if user is None:
        user = User(email=EMAIL, display_name="Bench", email_verified=True)
    user.is_active = True
    user.set_password(password)
    user.save()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log_file: IO[str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "cryptodesk.wsgi:application",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS_PER_WORKER),
        "--log-level",
        "warning",
    ]
    # Own session: a Ctrl-C reaches the bench only, which then stops gunicorn in its finally block.
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=log_file, start_new_session=True)


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_until_serving(process: subprocess.Popen, base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {process.returncode} before serving")
            try:
                if client.get(CONSTANT_PATH).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not serve {CONSTANT_PATH} within {START_TIMEOUT_S:.0f}s")


def obtain_tokens(base_url: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.post("/api/v1/auth/token/", json={"email": EMAIL, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"token request failed: HTTP {response.status_code} {response.text[:200]}")
    return response.json()


def check_me(base_url: str, access: str) -> None:
    """A 401 is fast: throughput means nothing unless the request really authenticates."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.get(ME_PATH, headers={"Authorization": f"Bearer {access}"})
    if response.status_code != 200 or response.json().get("email") != EMAIL:
        raise RuntimeError(f"GET {ME_PATH} failed: HTTP {response.status_code} {response.text[:200]}")


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time of gunicorn's master and workers so far: a cost per request that other load on the box cannot skew."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    ticks = 0
    for pid in [str(master_pid), *children]:
        try:
            # Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a worker that exited meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def generate_load(url: str, headers: dict[str, str], duration_s: float, server_pid: int) -> Load:
    """CLIENT_THREADS keep-alive clients hit one URL for duration_s; the clock starts once all are connected."""
    counts = [0] * CLIENT_THREADS
    failures = [0] * CLIENT_THREADS
    finished = [0.0] * CLIENT_THREADS
    ready = threading.Barrier(CLIENT_THREADS + 1)

    def run(index: int) -> None:
        with httpx.Client(headers=headers, timeout=10.0, trust_env=False) as client:
            client.get(url)  # opens the connection before the clock starts
            ready.wait()
            stop_at = time.perf_counter() + duration_s
            try:
                while counts[index] + failures[index] < MAX_REQUESTS_PER_THREAD and time.perf_counter() < stop_at:
                    try:
                        ok = client.get(url).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    counts[index] += ok
                    failures[index] += not ok
            finally:
                finished[index] = time.perf_counter()

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    cpu_before = time.process_time()
    server_before = server_cpu_seconds(server_pid)
    ready.wait(timeout=START_TIMEOUT_S)
    started = time.perf_counter()  # the barrier releases everyone at once: the window starts now
    for thread in threads:
        thread.join(timeout=duration_s + 30)
    cpu_used = time.process_time() - cpu_before
    server_used = server_cpu_seconds(server_pid) - server_before
    elapsed = max(finished) - started
    return Load(
        requests=sum(counts), failures=sum(failures), seconds=elapsed, client_cpu_s=cpu_used, server_cpu_s=server_used
    )


@dataclass(frozen=True)
class Throughput:
    """Medians over the rounds for each endpoint, plus every failed request."""

    me_rps: float
    constant_rps: float
    me_cpu_ms: float
    constant_cpu_ms: float
    failures: int


def measure_throughput(base_url: str, access: str, server_pid: int) -> Throughput:
    """Alternate the two endpoints for ROUNDS rounds, flipping the order each round so drift hits both alike."""
    targets = {
        "me": (base_url + ME_PATH, {"Authorization": f"Bearer {access}"}),
        "constant": (base_url + CONSTANT_PATH, {}),
    }
    for url, headers in targets.values():  # warm both: imports, connection pools, the session-active cache
        generate_load(url, headers, WARMUP_S, server_pid)
    loads: dict[str, list[Load]] = {"me": [], "constant": []}
    for round_no in range(1, ROUNDS + 1):
        order = ["me", "constant"] if round_no % 2 else ["constant", "me"]
        line = []
        for name in order:
            url, headers = targets[name]
            load = generate_load(url, headers, ROUND_S, server_pid)
            loads[name].append(load)
            line.append(
                f"{name} {load.rps:6.0f} req/s (server {load.server_cpu_ms_per_request:.2f} ms cpu/req, "
                f"client {load.client_cpu_share:.0%} cpu)"
            )
        print(f"round {round_no}: " + "; ".join(line), flush=True)
    return Throughput(
        me_rps=statistics.median(load.rps for load in loads["me"]),
        constant_rps=statistics.median(load.rps for load in loads["constant"]),
        me_cpu_ms=statistics.median(load.server_cpu_ms_per_request for load in loads["me"]),
        constant_cpu_ms=statistics.median(load.server_cpu_ms_per_request for load in loads["constant"]),
        failures=sum(load.failures for runs in loads.values() for load in runs),
    )


def count_queries(access: str, refresh: str) -> float:
    """Queries per warm authenticated request, in process with the same settings, database and cache."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts import services

    client = Client(headers={"Authorization": f"Bearer {access}"})
    warm = client.get(ME_PATH)
    if warm.status_code != 200:
        raise RuntimeError(f"in-process GET {ME_PATH} failed: HTTP {warm.status_code}")
    with CaptureQueriesContext(connection) as captured:
        for _ in range(QUERY_SAMPLES):
            if client.get(ME_PATH).status_code != 200:
                raise RuntimeError(f"in-process GET {ME_PATH} failed during sampling")
    services.end_api_session(raw_refresh=refresh)  # one device session per run, not one left open per run
    return len(captured.captured_queries) / QUERY_SAMPLES


def stop_on_sigterm(signum: int, frame: object) -> None:
    """Turn a plain kill into an exception so the finally block still stops gunicorn."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "THROTTLE_USER": THROTTLE_OFF,
        "THROTTLE_ANON": THROTTLE_OFF,
    }
    env.pop("ALLOWED_HOSTS", None)  # the server keeps the project's default hosts

    ensure_database(database_url)
    migrate(env)

    # This process shares the server's settings (same key, database and cache) so the token works here too;
    # only the test client's host is added.
    os.environ.update(env)
    os.environ["ALLOWED_HOSTS"] = f"{HOST},localhost,testserver"
    import django
    from django.db import connections

    django.setup()
    # The project's logging config logs every httpx request at INFO: that would tax the load generator.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # WhiteNoise warns that collectstatic never ran; the API serves no static files.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    password = secrets.token_urlsafe(24)
    ensure_bench_user(password)
    connections.close_all()  # no idle connection held through the load run

    port = free_port()
    base_url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile(mode="w+") as log_file:
        server = start_gunicorn(env, port, log_file)
        try:
            wait_until_serving(server, base_url)
            tokens = obtain_tokens(base_url, password)
            check_me(base_url, tokens["access"])
            print(
                f"gunicorn {WORKERS} workers x {THREADS_PER_WORKER} threads; "
                f"{CLIENT_THREADS} keep-alive client threads, {ROUNDS} rounds of {ROUND_S:.0f}s per endpoint",
                flush=True,
            )
            result = measure_throughput(base_url, tokens["access"], server.pid)
        except BaseException:
            log_file.seek(0)
            tail = log_file.read()[-3000:]
            if tail:
                print("gunicorn output:\n" + tail, file=sys.stderr)
            raise
        finally:
            stop_gunicorn(server)

    queries = count_queries(tokens["access"], tokens["refresh"])
    ratio = result.me_rps / result.constant_rps if result.constant_rps else 0.0
    cpu_ratio = result.constant_cpu_ms / result.me_cpu_ms if result.me_cpu_ms else 0.0
    print(f"GET {ME_PATH} (JWT): {result.me_rps:7.0f} req/s, {result.me_cpu_ms:.2f} ms server cpu/req (medians)")
    print(
        f"GET {CONSTANT_PATH}:  {result.constant_rps:7.0f} req/s, {result.constant_cpu_ms:.2f} ms server cpu/req (medians)"
    )
    print(
        f"server cpu per request, constant/me = {cpu_ratio:.2f} (server cost alone: other load on the box cannot move it)"
    )
    print(f"failed requests: {result.failures}")
    passed = ratio >= TARGET_RATIO and queries <= TARGET_QUERIES and result.failures == 0
    failures_note = f", {result.failures} failed requests" if result.failures else ""
    print(
        f"auth bench: me/constant = {ratio:.2f} (target >= {TARGET_RATIO}), "
        f"queries/request = {queries:.1f} (target <= {TARGET_QUERIES:g}){failures_note} -> {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
