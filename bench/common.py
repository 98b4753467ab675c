"""Shared bench plumbing: local-only databases, migrations, a gunicorn server and an alternating load generator."""

import io
import logging
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from accounts.models import User

ROOT = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cryptodesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
SETTINGS_MODULE = "bench.settings"
# High enough never to refuse; per second because DRF keeps one timestamp per request of the window in the
# cache and re-pickles that list on every request: a minute of this load would grow it without bound.
THROTTLE_OFF = "10000000/s"

EMAIL = "bench@cryptodesk.local"
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


@dataclass(frozen=True)
class Throughput:
    """One endpoint over all rounds: median rate and server CPU per request, and every failed request."""

    rps: float
    cpu_ms: float
    failures: int


def require_loopback(name: str, url: str) -> None:
    """The bench hammers what it is pointed at: only ever local services."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"bench: {name} must point at 127.0.0.1 (got host {host!r})")


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def with_database(database_url: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))


def ensure_database(database_url: str) -> bool:
    """Create the database if missing (True if created); CREATE DATABASE cannot run inside the target itself."""
    name = database_name(database_url)
    with psycopg.connect(with_database(database_url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name}")
    return True


def migrate(env: dict[str, str], *, timeout_s: float = MIGRATE_TIMEOUT_S) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=timeout_s,
    )


def server_env(database_url: str, redis_url: str, secret_key: str) -> dict[str, str]:
    """What the server and this process share: settings, key, database and cache, throttles out of the way."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DEBUG": "0",
        "SECRET_KEY": secret_key,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "THROTTLE_USER": THROTTLE_OFF,
        "THROTTLE_ANON": THROTTLE_OFF,
    }
    env.pop("ALLOWED_HOSTS", None)  # the server keeps the project's default hosts
    return env


def setup_django(env: dict[str, str]) -> None:
    """This process gets the server's settings (so its tokens work here too); only the test client's host is added."""
    os.environ.update(env)
    os.environ["ALLOWED_HOSTS"] = f"{HOST},localhost,testserver"
    import django

    django.setup()
    # The project's logging config logs every httpx request at INFO: that would tax the load generator.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # WhiteNoise warns that collectstatic never ran; the API serves no static files.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)


def ensure_bench_user(password: str) -> None:
    """Idempotent: the same account every run, with this run's password."""
    ensure_user(EMAIL, password, display_name="Bench")


def ensure_user(email: str, password: str, *, display_name: str) -> "User":
    """Idempotent: this account every run, active and verified, with this run's password."""
    from accounts.models import User

    user = User.objects.filter(email=email).first()
    if user is None:
        user = User(email=email, display_name=display_name, email_verified=True)
    user.is_active = True
    user.set_password(password)
    user.save()
    return user


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


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """Gunicorn on a free loopback port for the block; stopped whatever happens, its output shown on failure."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile(mode="w+") as log_file:
        server = start_gunicorn(env, port, log_file)
        try:
            wait_until_serving(server, base_url)
            yield server, base_url
        except BaseException:
            log_file.seek(0)
            tail = log_file.read()[-3000:]
            if tail:
                print("gunicorn output:\n" + tail, file=sys.stderr)
            raise
        finally:
            stop_gunicorn(server)


def obtain_tokens(base_url: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.post("/api/v1/auth/token/", json={"email": EMAIL, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"token request failed: HTTP {response.status_code} {response.text[:200]}")
    return response.json()


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


def compare_throughput(targets: dict[str, tuple[str, dict[str, str]]], server_pid: int) -> dict[str, Throughput]:
    """Alternate the endpoints for ROUNDS rounds, reversing the order each round so drift hits all alike."""
    return alternate_rounds(
        targets,
        load=lambda url, headers, seconds: generate_load(url, headers, seconds, server_pid),
        rounds=ROUNDS,
        round_s=ROUND_S,
        warmup_s=WARMUP_S,
        describe=lambda name, load: (
            f"{name} {load.rps:6.0f} req/s (server {load.server_cpu_ms_per_request:.2f} ms cpu/req, "
            f"client {load.client_cpu_share:.0%} cpu)"
        ),
    )


def alternate_rounds(
    targets: dict[str, tuple[str, dict[str, str]]],
    *,
    load: Callable[[str, dict[str, str], float], Load],
    rounds: int,
    round_s: float,
    warmup_s: float,
    describe: Callable[[str, Load], str],
) -> dict[str, Throughput]:
    """Warm every endpoint, then `rounds` rounds of `round_s` each, the order reversed every round; medians."""
    for url, headers in targets.values():  # warm them all: imports, connection pools, caches
        load(url, headers, warmup_s)
    loads: dict[str, list[Load]] = {name: [] for name in targets}
    names = list(targets)
    for round_no in range(1, rounds + 1):
        order = names if round_no % 2 else names[::-1]
        line = []
        for name in order:
            url, headers = targets[name]
            result = load(url, headers, round_s)
            loads[name].append(result)
            line.append(describe(name, result))
        print(f"round {round_no}: " + "; ".join(line), flush=True)
    return {
        name: Throughput(
            rps=statistics.median(run.rps for run in runs),
            cpu_ms=statistics.median(run.server_cpu_ms_per_request for run in runs),
            failures=sum(run.failures for run in runs),
        )
        for name, runs in loads.items()
    }


# --- wrk: a load generator in C, so the client is never the bottleneck ------------------------------

WRK_THREADS = 2
WRK_CONNECTIONS = WORKERS * THREADS_PER_WORKER  # one keep-alive connection per gunicorn thread
WRK_INSTALL_HINT = "bench: wrk is not installed (Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk)"
_WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)\b", re.MULTILINE)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def require_wrk() -> str:
    """The path of wrk, or a clear exit before anything is set up."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(WRK_INSTALL_HINT)
    return path


def parse_wrk(output: str) -> tuple[int, int, float]:
    """(requests, failed requests, seconds) from wrk's summary; non-2xx responses and socket errors are failures."""
    found = _WRK_REQUESTS.search(output)
    if found is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    requests, seconds = int(found[1]), float(found[2]) * _WRK_UNITS[found[3]]
    non_2xx = _WRK_NON_2XX.search(output)
    errors = _WRK_SOCKET_ERRORS.search(output)
    failures = (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return requests - (int(non_2xx[1]) if non_2xx else 0), failures, seconds


def wrk_load(url: str, headers: dict[str, str], duration_s: float, server_pid: int) -> Load:
    """wrk on one URL for duration_s; server CPU from /proc before and after, client CPU from wrk's own rusage."""
    command = [require_wrk(), "-t", str(WRK_THREADS), "-c", str(WRK_CONNECTIONS), "-d", f"{duration_s:g}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu_seconds(server_pid)
    finished = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration_s + 30, check=True)
    server_used = server_cpu_seconds(server_pid) - server_before
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_used = (client_after.ru_utime - client_before.ru_utime) + (client_after.ru_stime - client_before.ru_stime)
    requests, failures, seconds = parse_wrk(finished.stdout)
    return Load(
        requests=requests, failures=failures, seconds=seconds, client_cpu_s=client_used, server_cpu_s=server_used
    )


def compare_with_wrk(
    targets: dict[str, tuple[str, dict[str, str]]], server_pid: int, *, rounds: int, round_s: float, warmup_s: float
) -> dict[str, Throughput]:
    """compare_throughput with wrk as the client: alternating rounds, order reversed every round, medians."""
    return alternate_rounds(
        targets,
        load=lambda url, headers, seconds: wrk_load(url, headers, seconds, server_pid),
        rounds=rounds,
        round_s=round_s,
        warmup_s=warmup_s,
        describe=lambda name, load: f"{name} {load.rps:5.0f}/s {load.server_cpu_ms_per_request:.2f} ms",
    )


# --- in process: CPU per request through Django's WSGI handler, no server and no socket ---------------


def wsgi_environ(path: str, headers: dict[str, str]) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": HOST,
        "HTTP_HOST": HOST,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
    }
    environ.update({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return environ


def wsgi_cpu_per_request(
    targets: dict[str, tuple[str, dict[str, str]]], *, rounds: int, requests: int
) -> dict[str, float]:
    """Median over rounds of this process's CPU ms per request (time.process_time) for each path, the paths
    alternating and their order reversed every round. Waiting on the database or the cache is not CPU time.
    """
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()

    def call(path: str, headers: dict[str, str]) -> None:
        statuses: list[str] = []
        response = handler(wsgi_environ(path, headers), lambda status, _headers, _exc=None: statuses.append(status))
        body = b"".join(response)
        response.close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"in-process GET {path} failed: {statuses[0]} {body[:200]!r}")

    for path, headers in targets.values():  # warm: imports, connections, caches
        for _ in range(requests // 5 or 1):
            call(path, headers)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for round_no in range(rounds):
        for name in names if round_no % 2 == 0 else names[::-1]:
            path, headers = targets[name]
            started = time.process_time()
            for _ in range(requests):
                call(path, headers)
            samples[name].append(1000 * (time.process_time() - started) / requests)
    return {name: statistics.median(values) for name, values in samples.items()}


def stop_on_sigterm(signum: int, frame: object) -> None:
    """Turn a plain kill into an exception so the finally blocks still stop gunicorn."""
    raise SystemExit(128 + signum)


def install_sigterm_handler() -> None:
    signal.signal(signal.SIGTERM, stop_on_sigterm)


# --- a Celery worker for benches that queue tasks ---------------------------------------------------

WORKER_STOP_TIMEOUT_S = 20.0  # SIGTERM is a warm shutdown: the task in hand finishes first


def start_celery_worker(env: dict[str, str], queue: str, nodename: str, log_file: IO[str]) -> subprocess.Popen:
    """One worker process (solo pool) consuming `queue` alone, so it never takes another queue's messages."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "cryptodesk",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "--hostname",
        nodename,
        "--without-mingle",  # no waiting on replies from other workers on the same broker
        "--without-gossip",
        "--loglevel",
        "warning",
    ]
    # Own session, as for gunicorn: a Ctrl-C reaches the bench only, which stops the worker in its finally block.
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=log_file, start_new_session=True)


def stop_process(process: subprocess.Popen, *, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still running after timeout_s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def celery_worker(env: dict[str, str], queue: str, nodename: str) -> Iterator[subprocess.Popen]:
    """A worker on `queue` for the block; stopped whatever happens, its output shown on failure."""
    with tempfile.TemporaryFile(mode="w+") as log_file:
        worker = start_celery_worker(env, queue, nodename, log_file)
        try:
            yield worker
        except BaseException:
            log_file.seek(0)
            tail = log_file.read()[-3000:]
            if tail:
                print("celery worker output:\n" + tail, file=sys.stderr)
            raise
        finally:
            stop_process(worker, timeout_s=WORKER_STOP_TIMEOUT_S)
