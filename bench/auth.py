"""Auth bench: JWT-authenticated GET /api/v1/me/ against a constant view under gunicorn, and its queries per request."""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/auth.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    CLIENT_THREADS,
    CONSTANT_PATH,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    EMAIL,
    ROUND_S,
    ROUNDS,
    THREADS_PER_WORKER,
    WORKERS,
    compare_throughput,
    ensure_bench_user,
    ensure_database,
    install_sigterm_handler,
    migrate,
    obtain_tokens,
    require_loopback,
    server_env,
    serving,
    setup_django,
)

ME_PATH = "/api/v1/me/"
QUERY_SAMPLES = 20

TARGET_RATIO = 0.5
TARGET_QUERIES = 1.0


def check_me(base_url: str, access: str) -> None:
    """A 401 is fast: throughput means nothing unless the request really authenticates."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.get(ME_PATH, headers={"Authorization": f"Bearer {access}"})
    if response.status_code != 200 or response.json().get("email") != EMAIL:
        raise RuntimeError(f"GET {ME_PATH} failed: HTTP {response.status_code} {response.text[:200]}")


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


def main() -> int:
    install_sigterm_handler()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    env = server_env(database_url, redis_url, secrets.token_urlsafe(50))

    ensure_database(database_url)
    migrate(env)
    setup_django(env)
    from django.db import connections

    password = secrets.token_urlsafe(24)
    ensure_bench_user(password)
    connections.close_all()  # no idle connection held through the load run

    with serving(env) as (server, base_url):
        tokens = obtain_tokens(base_url, password)
        check_me(base_url, tokens["access"])
        print(
            f"gunicorn {WORKERS} workers x {THREADS_PER_WORKER} threads; "
            f"{CLIENT_THREADS} keep-alive client threads, {ROUNDS} rounds of {ROUND_S:.0f}s per endpoint",
            flush=True,
        )
        targets = {
            "me": (base_url + ME_PATH, {"Authorization": f"Bearer {tokens['access']}"}),
            "constant": (base_url + CONSTANT_PATH, {}),
        }
        result = compare_throughput(targets, server.pid)

    queries = count_queries(tokens["access"], tokens["refresh"])
    me, constant = result["me"], result["constant"]
    failures = me.failures + constant.failures
    ratio = me.rps / constant.rps if constant.rps else 0.0
    cpu_ratio = constant.cpu_ms / me.cpu_ms if me.cpu_ms else 0.0
    print(f"GET {ME_PATH} (JWT): {me.rps:7.0f} req/s, {me.cpu_ms:.2f} ms server cpu/req (medians)")
    print(f"GET {CONSTANT_PATH}:  {constant.rps:7.0f} req/s, {constant.cpu_ms:.2f} ms server cpu/req (medians)")
    print(
        f"server cpu per request, constant/me = {cpu_ratio:.2f} (server cost alone: other load on the box cannot move it)"
    )
    print(f"failed requests: {failures}")
    passed = ratio >= TARGET_RATIO and queries <= TARGET_QUERIES and failures == 0
    failures_note = f", {failures} failed requests" if failures else ""
    print(
        f"auth bench: me/constant = {ratio:.2f} (target >= {TARGET_RATIO}), "
        f"queries/request = {queries:.1f} (target <= {TARGET_QUERIES:g}){failures_note} -> {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
