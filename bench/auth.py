"""Auth bench: server CPU per request of JWT-authenticated GET /api/v1/me/ against a constant view, under gunicorn and wrk.

The cached coin list is measured against /health the same way; both pairs are also measured in process, through
Django's WSGI handler, where only this process's CPU time counts.
"""

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/auth.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    CONSTANT_PATH,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    EMAIL,
    THREADS_PER_WORKER,
    WORKERS,
    WRK_CONNECTIONS,
    WRK_THREADS,
    compare_with_wrk,
    ensure_bench_user,
    ensure_database,
    install_sigterm_handler,
    migrate,
    obtain_tokens,
    require_loopback,
    require_wrk,
    server_env,
    serving,
    setup_django,
    wsgi_cpu_per_request,
)

ME_PATH = "/api/v1/me/"
COINS_PATH = "/api/v1/coins/"
HEALTH_PATH = "/health"
QUERY_SAMPLES = 20
IN_PROCESS_ROUNDS = 7
IN_PROCESS_REQUESTS = 300
ROUNDS = 3
ROUND_S = 4.0
WARMUP_S = 1.0

TARGET_CPU_RATIO = 0.5  # server CPU per request, constant / me
TARGET_QUERIES = 1.0


def check_me(base_url: str, access: str) -> None:
    """A 401 is fast: throughput means nothing unless the request really authenticates."""
    with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
        response = client.get(ME_PATH, headers={"Authorization": f"Bearer {access}"})
    if response.status_code != 200 or response.json().get("email") != EMAIL:
        raise RuntimeError(f"GET {ME_PATH} failed: HTTP {response.status_code} {response.text[:200]}")


def seed_market() -> None:
    """The demo market unless coins are there already: the coin list must have a page to serve."""
    from market.demo.snapshot import load_snapshot

    loaded = load_snapshot()
    if loaded:
        print(f"loaded the demo market: {loaded['coins']} coins, {loaded['points']} price points")


def check_ok(base_url: str, path: str, headers: dict[str, str]) -> int:
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0, trust_env=False) as client:
        response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} failed: HTTP {response.status_code} {response.text[:200]}")
    return len(response.content)


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
    require_wrk()
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
    seed_market()
    connections.close_all()  # no idle connection held through the load run

    with serving(env) as (server, base_url):
        tokens = obtain_tokens(base_url, password)
        check_me(base_url, tokens["access"])
        jwt = {"Authorization": f"Bearer {tokens['access']}"}
        coins_bytes = check_ok(base_url, COINS_PATH, jwt)
        print(
            f"gunicorn {WORKERS} workers x {THREADS_PER_WORKER} threads; wrk {WRK_THREADS} threads, "
            f"{WRK_CONNECTIONS} keep-alive connections; {ROUNDS} rounds of {ROUND_S:.0f}s per endpoint",
            flush=True,
        )
        paths = {
            "me": (ME_PATH, jwt),
            "constant": (CONSTANT_PATH, {}),
            "coins": (COINS_PATH, jwt),
            "health": (HEALTH_PATH, {}),
        }
        targets = {name: (base_url + path, headers) for name, (path, headers) in paths.items()}
        result = compare_with_wrk(targets, server.pid, rounds=ROUNDS, round_s=ROUND_S, warmup_s=WARMUP_S)

    in_process = wsgi_cpu_per_request(paths, rounds=IN_PROCESS_ROUNDS, requests=IN_PROCESS_REQUESTS)
    queries = count_queries(tokens["access"], tokens["refresh"])
    failures = sum(each.failures for each in result.values())
    me, constant, coins, health = result["me"], result["constant"], result["coins"], result["health"]

    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator else 0.0

    labels = {
        "me": f"GET {ME_PATH} (JWT)",
        "constant": f"GET {CONSTANT_PATH}",
        "coins": f"GET {COINS_PATH} (JWT, {coins_bytes:,} bytes)",
        "health": f"GET {HEALTH_PATH}",
    }
    for name, label in labels.items():
        print(f"{label:<42} {result[name].rps:6.0f} req/s  {result[name].cpu_ms:.2f} ms server cpu/req (medians)")
    cpu_ratio = ratio(constant.cpu_ms, me.cpu_ms)
    print(
        f"me/constant: server cpu {cpu_ratio:.2f}, throughput {ratio(me.rps, constant.rps):.2f}; "
        f"coins/health: server cpu {ratio(health.cpu_ms, coins.cpu_ms):.2f}, "
        f"throughput {ratio(coins.rps, health.rps):.2f}"
    )
    print(
        f"in process ({IN_PROCESS_ROUNDS} rounds of {IN_PROCESS_REQUESTS} requests, medians): "
        + ", ".join(f"{name} {in_process[name]:.2f} ms" for name in labels)
        + f"; me/constant cpu {ratio(in_process['constant'], in_process['me']):.2f}, "
        f"coins/health cpu {ratio(in_process['health'], in_process['coins']):.2f}"
    )
    print(f"failed requests: {failures}")
    passed = cpu_ratio >= TARGET_CPU_RATIO and queries <= TARGET_QUERIES and failures == 0
    failures_note = f", {failures} failed requests" if failures else ""
    print(
        f"auth bench: server cpu per request constant/me = {cpu_ratio:.2f} (target >= {TARGET_CPU_RATIO}), "
        f"queries/request = {queries:.1f} (target <= {TARGET_QUERIES:g}){failures_note} "
        f"-> {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
