"""Real-time bench: one sync's prices fanned out to 1,000 sockets under uvicorn, against the same clients polling.

The server is one uvicorn process on the loopback with the Redis channel layer; the sockets and the pollers live in
another process (asyncio, the `websockets` client and httpx); this process seeds the market, mints the tokens and
runs the syncs, as a worker would.
"""

import asyncio
import json
import multiprocessing
import os
import random
import resource
import secrets
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/realtime.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import (  # noqa: E402
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    HOST,
    START_TIMEOUT_S,
    ensure_database,
    free_port,
    install_sigterm_handler,
    migrate,
    require_loopback,
    server_cpu_seconds,
    server_env,
    setup_django,
    stop_process,
    with_database,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from accounts.services import TokenPair
    from market.coingecko import MarketRow

DEFAULT_REALTIME_DATABASE_URL = with_database(DEFAULT_DATABASE_URL, "cryptodesk_bench_realtime")
COINS_PATH = "/api/v1/coins/"
WS_PATH = "/ws/v1/"
USER_AGENT = "bench-realtime/1.0"

COINS = 250  # one CoinGecko markets page: every sync moves all of them
TOP = 50  # the default page of the coin list: what the pollers read
COINS_PER_SOCKET = 20  # drawn from the top 50
COIN_PREFIX = "bench-rt-"
SPARKLINE_POINTS = 168
USERS = 100
SOCKETS_PER_USER = 10  # WS_MAX_SOCKETS_PER_USER's default: the server keeps the project's limit
SOCKETS = USERS * SOCKETS_PER_USER
EMAIL = "bench-rt-{:03d}@cryptodesk.local"
WARM_EMAIL = "bench-rt-warm@cryptodesk.local"  # its socket warms the server up and is gone before the count

CONNECT_CONCURRENCY = 50  # handshakes in flight at once
CLIENT_PING_S = 25.0  # every socket pings as the desk's own page does (static/js/live.js), the starts spread
SETTLE_S = 3.0
EMPTY_IDLE_S = 3.0
IDLE_S = 15.0  # three session checks per socket (every 5 s); uvicorn's keep-alive ping comes every 20 s
ROUNDS = 3
ROUND_TIMEOUT_S = 60.0
ROUND_GAP_S = 1.5
POLL_INTERVAL_S = 5.0
POLL_S = 20.0
POLL_SYNC_AT_S = 8.0  # one sync inside each polling window, as in the socket rounds
POLL_CLIENTS = 50  # httpx clients the pollers share, each poller on one of them, round robin
POLL_POOL = SOCKETS // POLL_CLIENTS  # keep-alive connections per client: no poller ever waits for one
POLL_TIMEOUT_S = 15.0  # a poller gives up on an answer after this; it starts no poll past POLL_S
POLLS_PER_MINUTE = SOCKETS * 60 / POLL_INTERVAL_S  # what the desk needs: 12,000 requests a minute
SEQUENTIAL_REQUESTS = 200  # one client, one request at a time: the server's cost per request when not queueing
REPLY_TIMEOUT_S = 120.0
MIN_OPEN_FILES = 4 * SOCKETS  # both ends of every socket live on this machine


# --- the load process: sockets and pollers (no Django here) -----------------------------------------


@dataclass
class Subscriber:
    ws: Any
    coins: frozenset[str]
    heard: dict[str, float] = field(default_factory=dict)


class LoadClient:
    """Commands from the bench, run on one event loop; every figure it returns is measured here, on receipt."""

    def __init__(self, ws_url: str, http_url: str):
        self.ws_url = ws_url
        self.http_url = http_url
        self.subscribers: list[Subscriber] = []
        self.readers: list[asyncio.Task] = []
        self.expected: dict[str, Decimal] = {}
        self.times: list[float] = []
        self.complete = 0
        self.stale = 0
        self.other = 0
        self.bytes_in = 0
        self.closed: Counter[str] = Counter()
        self.done = asyncio.Event()
        self.cpu_mark = time.process_time()
        self.polling: asyncio.Task | None = None

    async def connect(self, plan: list[tuple[str, list[str]]]) -> dict:
        """Open, authenticate and subscribe one socket per (token, coins), CONNECT_CONCURRENCY at a time."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        cpu, started = time.process_time(), time.perf_counter()

        async def one(token: str, coins: list[str]) -> Subscriber:
            async with gate:
                return await self._open(token, coins)

        results = await asyncio.gather(*(one(token, coins) for token, coins in plan), return_exceptions=True)
        failures = Counter(str(result) for result in results if isinstance(result, BaseException))
        opened = [result for result in results if isinstance(result, Subscriber)]
        self.subscribers += opened
        self.readers += [asyncio.create_task(self._read(subscriber)) for subscriber in opened]
        self.readers += [
            asyncio.create_task(self._ping(subscriber, CLIENT_PING_S * number / len(opened)))
            for number, subscriber in enumerate(opened)
        ]
        deflate = sum(
            any(extension.name == "permessage-deflate" for extension in subscriber.ws.protocol.extensions)
            for subscriber in opened
        )
        return {
            "connected": len(opened),
            "failures": dict(failures),
            "seconds": time.perf_counter() - started,
            "deflate": deflate,
            "client_cpu_s": time.process_time() - cpu,
        }

    async def _open(self, token: str, coins: list[str]) -> Subscriber:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        ws = await connect(self.ws_url, ping_interval=None, open_timeout=30, user_agent_header=USER_AGENT)
        try:
            for message, answer in [
                ({"type": "auth", "token": token}, "authenticated"),
                ({"type": "subscribe", "channel": "prices", "coins": coins}, "subscribed"),
            ]:
                await ws.send(json.dumps(message))
                reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
                if reply.get("type") != answer:
                    raise RuntimeError(f"{message['type']} answered {reply.get('type')}: {reply.get('detail')}")
        except ConnectionClosed as exc:
            await ws.close()
            raise RuntimeError(f"closed with {exc.rcvd.code if exc.rcvd else 'no code'}") from None
        except BaseException:
            await ws.close()
            raise
        return Subscriber(ws=ws, coins=frozenset(coins))

    async def _read(self, subscriber: Subscriber) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in subscriber.ws:
                at = time.time()
                self.bytes_in += len(frame)
                message = json.loads(frame)
                if message.get("type") == "price":
                    self._heard(subscriber, message, at)
                else:
                    self.other += 1
        except ConnectionClosed:
            pass
        code = subscriber.ws.close_code
        self.closed[str(code)] += 1

    async def _ping(self, subscriber: Subscriber, offset_s: float) -> None:
        from websockets.exceptions import ConnectionClosed

        await asyncio.sleep(offset_s)
        try:
            while True:
                await subscriber.ws.send('{"type":"ping"}')
                await asyncio.sleep(CLIENT_PING_S)
        except ConnectionClosed:
            pass

    def _heard(self, subscriber: Subscriber, message: dict, at: float) -> None:
        coin = message["coin"]
        expected = self.expected.get(coin)
        if coin not in subscriber.coins or expected is None or Decimal(message["price"]) != expected:
            self.stale += 1  # not this round's price, or a coin it never asked for
            return
        if coin in subscriber.heard:
            self.stale += 1
            return
        subscriber.heard[coin] = at
        self.times.append(at)
        if len(subscriber.heard) == len(subscriber.coins):
            self.complete += 1
            if self.complete == len(self.subscribers):
                self.done.set()

    async def arm(self, expected: dict[str, str]) -> dict:
        """The prices the next sync writes: from now on only those count, once per socket and coin."""
        self.expected = {coin: Decimal(price) for coin, price in expected.items()}
        for subscriber in self.subscribers:
            subscriber.heard.clear()
        self.times, self.complete, self.stale, self.other, self.bytes_in = [], 0, 0, 0, 0
        self.done = asyncio.Event()
        self.cpu_mark = time.process_time()
        return {"armed": len(self.subscribers)}

    async def collect(self, timeout_s: float) -> dict:
        """Wait until every socket heard every one of its coins at the armed prices, or the timeout."""
        try:
            await asyncio.wait_for(self.done.wait(), timeout=timeout_s)
        except TimeoutError:
            pass
        return {
            "times": self.times,
            "complete": self.complete,
            "sockets": len(self.subscribers),
            "expected": sum(len(subscriber.coins) for subscriber in self.subscribers),
            "stale": self.stale,
            "other": self.other,
            "bytes": self.bytes_in,
            "closed": dict(self.closed),
            "client_cpu_s": time.process_time() - self.cpu_mark,
        }

    async def close(self) -> dict:
        await asyncio.gather(*(subscriber.ws.close() for subscriber in self.subscribers), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        closed = len(self.subscribers)
        self.subscribers, self.readers = [], []
        return {"closed": closed}

    async def start_polling(self, tokens: list[str], conditional: bool) -> dict:
        """Every token's client polls the coin list every POLL_INTERVAL_S for POLL_S, their starts spread evenly."""
        started = time.time() + 0.5  # every poller's schedule hangs off this wall time
        self.polling = asyncio.create_task(self._poll(tokens, conditional, started))
        return {"started": started}

    async def polled(self) -> dict:
        return await self.polling

    async def _poll(self, tokens: list[str], conditional: bool, started: float) -> dict:
        # One pool for all would queue 1,000 requests on one pool, whose bookkeeping then costs this process more
        # than the requests cost the server: smaller pools, shared round robin, as many connections as needed.
        limits = httpx.Limits(max_connections=POLL_POOL, max_keepalive_connections=POLL_POOL)
        tls = ssl.create_default_context()  # loopback HTTP: built once, never used, instead of once per client
        cpu = time.process_time()
        async with AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=self.http_url, limits=limits, timeout=POLL_TIMEOUT_S, trust_env=False, verify=tls
                    )
                )
                for _ in range(POLL_CLIENTS)
            ]
            results = await asyncio.gather(
                *(
                    self._poller(clients[index % POLL_CLIENTS], token, index, len(tokens), conditional, started)
                    for index, token in enumerate(tokens)
                )
            )
        statuses: Counter[str] = Counter()
        latencies, seen, body_bytes, ends = [], [], 0, []
        for result in results:
            statuses.update(result["statuses"])
            latencies += result["latencies"]
            body_bytes += result["bytes"]
            ends.append(result["end"])
            seen.append(result["changed_at"])
        return {
            "statuses": dict(statuses),
            "latencies": latencies,
            "bytes": body_bytes,
            "seen": seen,
            "window": (started, max(ends)),
            "client_cpu_s": time.process_time() - cpu,
        }

    async def _poller(
        self, client: httpx.AsyncClient, token: str, index: int, count: int, conditional: bool, started: float
    ) -> dict:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT}
        statuses: Counter[str] = Counter()
        latencies: list[float] = []
        body_bytes, etag, first_etag, changed_at = 0, None, None, None
        offset = index * POLL_INTERVAL_S / count
        for poll in range(round(POLL_S / POLL_INTERVAL_S)):
            await asyncio.sleep(max(0.0, started + offset + poll * POLL_INTERVAL_S - time.time()))
            sent = time.time()
            if sent > started + POLL_S:
                statuses["not sent"] += 1  # the answers before came too late for this poll's turn
                continue
            try:
                extra = {"If-None-Match": etag} if conditional and etag else {}
                response = await client.get(COINS_PATH, headers={**headers, **extra})
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            received = time.time()
            statuses[str(response.status_code)] += 1
            latencies.append(received - sent)
            body_bytes += len(response.content)
            etag = response.headers.get("ETag", etag)
            first_etag = first_etag or etag
            if changed_at is None and etag != first_etag:
                changed_at = received  # the first answer after the sync: new prices reached this client
        return {
            "statuses": statuses,
            "latencies": latencies,
            "bytes": body_bytes,
            "end": time.time(),
            "changed_at": changed_at,
        }


async def serve_commands(conn: "Connection", ws_url: str, http_url: str) -> None:
    client = LoadClient(ws_url, http_url)
    loop = asyncio.get_running_loop()
    while True:
        try:
            command, args = await loop.run_in_executor(None, conn.recv)
        except EOFError:  # the bench is gone
            break
        if command == "stop":
            break
        try:
            reply = await getattr(client, command)(*args)
        except Exception as exc:
            reply = {"error": f"{command}: {exc!r}"}
        conn.send(reply)
    await client.close()


def load_process(conn: "Connection", ws_url: str, http_url: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the bench's to handle: it stops this process
    asyncio.run(serve_commands(conn, ws_url, http_url))


class Load:
    """The bench's end of the pipe to the load process."""

    def __init__(self, conn: "Connection"):
        self.conn = conn

    def call(self, command: str, *args: Any, timeout_s: float = REPLY_TIMEOUT_S) -> dict:
        self.conn.send((command, args))
        if not self.conn.poll(timeout_s):
            raise RuntimeError(f"the load process did not answer {command} within {timeout_s:.0f}s")
        reply = self.conn.recv()
        if "error" in reply:
            raise RuntimeError(f"load process: {reply['error']}")
        return reply


@contextmanager
def load_process_running(ws_url: str, http_url: str) -> Iterator[Load]:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no Django, no inherited connections
    ours, theirs = context.Pipe()
    process = context.Process(target=load_process, args=(theirs, ws_url, http_url), daemon=True)
    process.start()
    theirs.close()
    try:
        yield Load(ours)
    finally:
        try:
            ours.send(("stop", ()))
        except OSError:
            pass
        process.join(timeout=15)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)
        ours.close()


# --- the server -------------------------------------------------------------------------------------


def raise_open_files_limit() -> None:
    """Children inherit it: uvicorn holds one descriptor per socket, the load process another."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < MIN_OPEN_FILES:
        wanted = MIN_OPEN_FILES if hard == resource.RLIM_INFINITY else min(MIN_OPEN_FILES, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        print(f"raised the open-files limit from {soft} to {wanted}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def uvicorn_serving(env: dict[str, str]) -> Iterator[tuple[int, str]]:
    """One uvicorn process on a free loopback port; stopped whatever happens, its output shown on failure."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    command = [
        *(sys.executable, "-m", "uvicorn", "cryptodesk.asgi:application", "--host", HOST, "--port", str(port)),
        *("--ws", "websockets-sansio", "--ws-max-size", "65536", "--ws-per-message-deflate", "false"),
        *("--loop", "uvloop", "--lifespan", "off", "--no-access-log"),
        *("--log-level", "warning"),
    ]
    with tempfile.TemporaryFile(mode="w+") as log_file:
        # Own session: a Ctrl-C reaches the bench only, which then stops the server in its finally block.
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=log_file, start_new_session=True)
        try:
            wait_for_health(server, base_url)
            yield server.pid, base_url
        except BaseException:
            log_file.seek(0)
            tail = log_file.read()[-3000:]
            if tail:
                print("uvicorn output:\n" + tail, file=sys.stderr)
            raise
        finally:
            stop_process(server)


def wait_for_health(server: subprocess.Popen, base_url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"uvicorn exited with code {server.returncode} before serving")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"uvicorn did not serve /health within {START_TIMEOUT_S:.0f}s")


class Redis:
    """The Redis server's own CPU counters (INFO cpu): the channel layer's share of a fan-out."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)

    def cpu_seconds(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- the desk: coins, users, tokens, syncs -----------------------------------------------------------


class RowsProvider:
    """Stands in for the CoinGecko client: one page of the given rows."""

    calls = 1

    def __init__(self, rows: list["MarketRow"]):
        self.rows = rows

    def markets(self, *, per_page: int):
        return self.rows[:per_page], {}


def coin_id(index: int) -> str:
    return f"{COIN_PREFIX}{index:03d}"


def price(index: int, round_no: int) -> Decimal:
    """Distinct for every coin and round; the trailing 7 keeps every place significant."""
    return Decimal(f"{100 + index}.{round_no:04d}{index:03d}7")


def market_rows(round_no: int, at: datetime) -> list["MarketRow"]:
    from cryptodesk.money import quantize
    from market.coingecko import MarketRow

    rows = []
    for index in range(COINS):
        current = price(index, round_no)
        market_cap = quantize(current * (10_000_000 - index * 10_000), places=2)
        rows.append(
            MarketRow(
                id=coin_id(index),
                symbol=f"rt{index}",
                name=f"Realtime {index}",
                image="",
                current_price=current,
                market_cap=market_cap,
                total_volume=quantize(market_cap / 20, places=2),
                price_change_percentage_24h=Decimal(f"{index % 40 - 20}.{round_no:02d}"),
                market_cap_rank=index + 1,
                high_24h=current + 1,
                low_24h=current - 1,
                last_updated=at,
                sparkline=[current - Decimal(step) / 1000 for step in range(SPARKLINE_POINTS, 0, -1)],
            )
        )
    return rows


@dataclass(frozen=True)
class SyncTimes:
    """Wall times (epoch seconds) around one sync; `written` is the run's finished_at, set just before COMMIT."""

    started: float
    written: float
    published: float
    returned: float
    bench_cpu_s: float
    prices: dict[str, str]


class Desk:
    """Runs the real market sync in this process; the hooks, channel-layer sends included, run here on commit."""

    def __init__(self):
        from market import hooks

        self.round_no = 0
        self.last_at: datetime | None = None
        self.published: list[float] = []
        # Subscribed after every app's handler: it runs once the price messages have left for the channel layer.
        hooks.subscribe(self._mark_published)

    def _mark_published(self, event) -> None:
        self.published.append(time.time())

    def next_prices(self) -> dict[str, str]:
        return {coin_id(index): str(price(index, self.round_no + 1)) for index in range(COINS)}

    def sync(self) -> SyncTimes:
        from market.services import sync_markets

        self.round_no += 1
        at = datetime.now(UTC).replace(microsecond=0)
        if self.last_at is not None and at <= self.last_at:
            at = self.last_at + timedelta(seconds=1)  # a socket drops a tick not newer than the one it has
        self.last_at = at
        rows = market_rows(self.round_no, at)
        self.published.clear()
        cpu, started = time.process_time(), time.time()
        run = sync_markets(client=RowsProvider(rows), follow_up=False)
        returned = time.time()
        cpu = time.process_time() - cpu
        if run is None or run.finished_at is None or not self.published:
            raise RuntimeError("the sync did not finish, or its prices-updated hook never ran")
        return SyncTimes(
            started=started,
            written=run.finished_at.timestamp(),
            published=self.published[0],
            returned=returned,
            bench_cpu_s=cpu,
            prices={row.id: str(row.current_price) for row in rows},
        )


@contextmanager
def eager_tasks() -> Iterator[None]:
    """The hooks' follow-up tasks run here, as in tests: no worker consumes the broker's queue in this bench."""
    import logging

    from cryptodesk.celery import app

    key = "CELERY_TASK_ALWAYS_EAGER"
    eager = app.conf[key]
    trace_log = logging.getLogger("celery.app.trace")
    level = trace_log.level
    app.conf[key] = True
    trace_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        app.conf[key] = eager
        trace_log.setLevel(level)


def remove_bench_coins() -> None:
    from market.models import Coin

    Coin.objects.filter(id__startswith=COIN_PREFIX).delete()  # cascades to their quotes and points


def bench_users() -> list:
    """USERS accounts and the warm-up one, active and verified; no password (tokens are minted here)."""
    from accounts.models import DeviceSession, User

    emails = [EMAIL.format(index) for index in range(USERS)] + [WARM_EMAIL]
    existing = {user.email: user for user in User.objects.filter(email__in=emails)}
    users = []
    for email in emails:
        user = existing.get(email) or User(email=email, display_name=email.split("@")[0], email_verified=True)
        if user.pk is None:
            user.set_unusable_password()
            user.save()
        users.append(user)
    # A run that was killed left its sessions open: end them (and their socket counts) before counting anew.
    DeviceSession.objects.filter(user__in=users, revoked_at__isnull=True).update(revoked_at=datetime.now(UTC))
    return users


def reset_socket_counts(users: list) -> None:
    from django.core.cache import cache

    from cryptodesk.realtime.limits import socket_count_key

    cache.delete_many([socket_count_key(user.pk) for user in users])


def mint_tokens(users: list) -> list["TokenPair"]:
    from accounts.services import Client, start_api_session

    client = Client(user_agent=USER_AGENT, ip=HOST)
    return [start_api_session(user=user, client=client) for user in users]


def end_sessions(pairs: list["TokenPair"]) -> None:
    from accounts.services import end_api_session

    for pair in pairs:
        end_api_session(raw_refresh=pair.refresh)


def close_connections() -> None:
    """No idle connection held through the load."""
    from django.db import connections

    connections.close_all()


def socket_plan(pairs: list["TokenPair"]) -> list[tuple[str, list[str]]]:
    """SOCKETS_PER_USER sockets per user, each subscribed to COINS_PER_SOCKET of the top coins (seeded draws)."""
    top = [coin_id(index) for index in range(TOP)]
    plan = []
    for number in range(SOCKETS):
        pair = pairs[number // SOCKETS_PER_USER]
        plan.append((pair.access, random.Random(number).sample(top, COINS_PER_SOCKET)))
    return plan


# --- figures ------------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


@dataclass(frozen=True)
class Idle:
    seconds: float
    server_cpu_s: float
    redis_cpu_s: float

    @property
    def cpu_per_s(self) -> float:
        return self.server_cpu_s / self.seconds


def measure_idle(server_pid: int, redis: Redis, seconds: float) -> Idle:
    cpu, redis_cpu, started = server_cpu_seconds(server_pid), redis.cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    return Idle(
        seconds=time.perf_counter() - started,
        server_cpu_s=server_cpu_seconds(server_pid) - cpu,
        redis_cpu_s=redis.cpu_seconds() - redis_cpu,
    )


@dataclass(frozen=True)
class Round:
    times: SyncTimes
    received: list[float]
    complete: int
    sockets: int
    expected: int
    stale: int
    other: int
    closed: dict[str, int]
    bytes: int
    seconds: float
    server_cpu_s: float
    redis_cpu_s: float
    client_cpu_s: float

    def latencies(self, base: float) -> list[float]:
        return [at - base for at in self.received]

    @property
    def last_receive(self) -> float:
        return max(self.received) if self.received else self.times.written

    @property
    def messages_per_s(self) -> float:
        span = self.last_receive - self.times.written
        return len(self.received) / span if span > 0 else 0.0

    def sync_cpu_s(self, idle: Idle) -> float:
        """The server's CPU for this sync: the round's, less what it burns idle over the same time."""
        return self.server_cpu_s - idle.cpu_per_s * self.seconds


def run_round(load: Load, desk: Desk, server_pid: int, redis: Redis) -> Round:
    load.call("arm", desk.next_prices())
    cpu, redis_cpu, started = server_cpu_seconds(server_pid), redis.cpu_seconds(), time.perf_counter()
    times = desk.sync()
    result = load.call("collect", ROUND_TIMEOUT_S)
    seconds = time.perf_counter() - started
    return Round(
        times=times,
        received=result["times"],
        complete=result["complete"],
        sockets=result["sockets"],
        expected=result["expected"],
        stale=result["stale"],
        other=result["other"],
        closed=result["closed"],
        bytes=result["bytes"],
        seconds=seconds,
        server_cpu_s=server_cpu_seconds(server_pid) - cpu,
        redis_cpu_s=redis.cpu_seconds() - redis_cpu,
        client_cpu_s=result["client_cpu_s"],
    )


def describe_round(label: str, rounds: list[Round], idle: Idle) -> None:
    received = sum(len(one.received) for one in rounds)
    expected = sum(one.expected for one in rounds)
    complete = sum(one.complete for one in rounds)
    sockets = sum(one.sockets for one in rounds)
    written = [latency for one in rounds for latency in one.latencies(one.times.written)]
    print(
        f"{label}: {complete}/{sockets} sockets heard all {COINS_PER_SOCKET} prices, {received}/{expected} messages; "
        f"commit → receive p50 {ms(percentile(written, 0.5))}, p95 {ms(percentile(written, 0.95))}, "
        f"max {ms(max(written, default=float('nan')))}; "
        f"{statistics.median(one.messages_per_s for one in rounds):,.0f} messages/s delivered"
    )
    bases = {
        "sync start": lambda one: one.times.started,
        "sends done": lambda one: one.times.published,
        "sync return": lambda one: one.times.returned,
    }
    parts = []
    for name, base in bases.items():
        values = [latency for one in rounds for latency in one.latencies(base(one))]
        parts.append(f"from {name} p50 {ms(percentile(values, 0.5))} / max {ms(max(values, default=float('nan')))}")
    print(f"    {'; '.join(parts)}")
    print(
        f"    sync in this process {ms(statistics.median(one.times.bench_cpu_s for one in rounds))} cpu "
        f"(written {ms(statistics.median(one.times.written - one.times.started for one in rounds))} after start, "
        f"sends done {ms(statistics.median(one.times.published - one.times.written for one in rounds))} after); "
        f"server {statistics.median(one.server_cpu_s for one in rounds):.2f} s cpu in "
        f"{statistics.median(one.seconds for one in rounds):.1f} s "
        f"({statistics.median(one.server_cpu_s / one.seconds for one in rounds):.0%} of a core), "
        f"{statistics.median(one.sync_cpu_s(idle) for one in rounds):.2f} s above idle = "
        f"{statistics.median(1000 * one.sync_cpu_s(idle) / max(len(one.received), 1) for one in rounds):.2f} ms "
        f"per message; "
        f"redis {statistics.median(one.redis_cpu_s for one in rounds):.2f} s; "
        f"load process {statistics.median(one.client_cpu_s for one in rounds):.2f} s; "
        f"stale or repeated {sum(one.stale for one in rounds)}, other {sum(one.other for one in rounds)}"
    )


@dataclass(frozen=True)
class Polling:
    label: str
    statuses: dict[str, int]
    latencies: list[float]
    body_bytes: int
    staleness: list[float]
    unseen: int
    seconds: float
    measured_s: float
    server_cpu_s: float
    redis_cpu_s: float
    client_cpu_s: float
    sync: SyncTimes

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def served(self) -> int:
        return self.statuses.get("200", 0) + self.statuses.get("304", 0)

    @property
    def failures(self) -> int:
        return self.requests - self.served

    @property
    def rps(self) -> float:
        return self.served / self.seconds

    @property
    def cpu_per_s(self) -> float:
        return self.server_cpu_s / self.measured_s

    @property
    def cpu_per_request(self) -> float:
        return self.server_cpu_s / max(self.served, 1)

    @property
    def minute_cpu_s(self) -> float:
        """Server CPU for a minute of 1,000 clients polling every 5 s, at the measured cost per answer."""
        return self.cpu_per_request * POLLS_PER_MINUTE

    @property
    def kept_up(self) -> bool:
        return self.rps >= 0.95 * POLLS_PER_MINUTE / 60


def run_polling(
    load: Load, desk: Desk, tokens: list[str], server_pid: int, redis: Redis, *, conditional: bool
) -> Polling:
    cpu, redis_cpu, measured = server_cpu_seconds(server_pid), redis.cpu_seconds(), time.perf_counter()
    started = load.call("start_polling", tokens, conditional)["started"]
    time.sleep(max(0.0, started + POLL_SYNC_AT_S - time.time()))
    sync = desk.sync()
    result = load.call("polled", timeout_s=POLL_S + 2 * POLL_TIMEOUT_S + REPLY_TIMEOUT_S)
    server_cpu, redis_used = server_cpu_seconds(server_pid) - cpu, redis.cpu_seconds() - redis_cpu
    measured = time.perf_counter() - measured
    first, last = result["window"]
    seen = [at - sync.written for at in result["seen"] if at is not None]
    return Polling(
        label="conditional GET (If-None-Match)" if conditional else "plain GET",
        statuses=result["statuses"],
        latencies=result["latencies"],
        body_bytes=result["bytes"],
        staleness=seen,
        unseen=sum(1 for at in result["seen"] if at is None),
        seconds=last - first,
        measured_s=measured,
        server_cpu_s=server_cpu,
        redis_cpu_s=redis_used,
        client_cpu_s=result["client_cpu_s"],
        sync=sync,
    )


def describe_polling(poll: Polling) -> None:
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(poll.statuses.items()))
    print(
        f"{poll.label}: {poll.served}/{poll.requests} served in {poll.seconds:.1f} s = {poll.rps:.0f} req/s ({statuses}); "
        f"latency p50 {ms(percentile(poll.latencies, 0.5))}, p95 {ms(percentile(poll.latencies, 0.95))}; "
        f"server {poll.server_cpu_s:.2f} s cpu = {poll.cpu_per_s:.0%} of a core, "
        f"{1000 * poll.cpu_per_request:.2f} ms/request; redis {poll.redis_cpu_s:.2f} s; "
        f"load process {poll.client_cpu_s:.2f} s; {poll.body_bytes / 1e6:.1f} MB of bodies"
    )
    print(
        f"    the sync {POLL_SYNC_AT_S:.0f} s in: clients saw its prices p50 {percentile(poll.staleness, 0.5):.2f} s, "
        f"p95 {percentile(poll.staleness, 0.95):.2f} s, max {max(poll.staleness, default=float('nan')):.2f} s after "
        f"the commit ({poll.unseen} never did)"
    )
    if not poll.kept_up:
        print(
            f"    one uvicorn process fell behind: {poll.rps:.0f} req/s answered of the "
            f"{POLLS_PER_MINUTE / 60:.0f} req/s these clients ask for"
        )


def request_costs(call: Callable[[dict[str, str]], tuple[int, str]], cpu: Callable[[], float]) -> dict[str, float]:
    """CPU ms per coin-list request, plain and conditional (the ETag of the page now), one request at a time."""
    status, etag = call({})
    if status != 200 or not etag:
        raise RuntimeError(f"GET {COINS_PATH} answered {status}, ETag {etag!r}")
    costs = {}
    for label, extra, answer in [("plain", {}, 200), ("conditional", {"If-None-Match": etag}, 304)]:
        for _ in range(SEQUENTIAL_REQUESTS // 5):
            call(extra)
        before = cpu()
        for _ in range(SEQUENTIAL_REQUESTS):
            status, _etag = call(extra)
            if status != answer:
                raise RuntimeError(f"GET {COINS_PATH} ({label}) answered {status}")
        costs[label] = 1000 * (cpu() - before) / SEQUENTIAL_REQUESTS
    return costs


def server_request_costs(base_url: str, access: str, server_pid: int) -> dict[str, float]:
    """The uvicorn process's CPU per request with one client on one connection: no queue, no concurrency."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {access}"}, trust_env=False) as client:

        def call(extra: dict[str, str]) -> tuple[int, str]:
            response = client.get(COINS_PATH, headers=extra)
            return response.status_code, response.headers.get("ETag", "")

        return request_costs(call, lambda: server_cpu_seconds(server_pid))


def wsgi_request_costs(access: str) -> dict[str, float]:
    """The same through Django's WSGI handler in this process (what gunicorn's workers run): no server, no socket."""
    from django.core.handlers.wsgi import WSGIHandler

    from bench.common import wsgi_environ

    handler = WSGIHandler()
    headers = {"Authorization": f"Bearer {access}"}

    def call(extra: dict[str, str]) -> tuple[int, str]:
        statuses: list[str] = []
        response = handler(wsgi_environ(COINS_PATH, {**headers, **extra}), lambda status, *_: statuses.append(status))
        b"".join(response)
        response.close()
        return int(statuses[0].split()[0]), response.get("ETag", "")

    try:
        return request_costs(call, time.process_time)
    finally:
        close_connections()


# --- main ---------------------------------------------------------------------------------------------


def main() -> int:
    started = time.perf_counter()
    install_sigterm_handler()
    database_url = os.environ.get("DATABASE_URL", DEFAULT_REALTIME_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    require_loopback("DATABASE_URL", database_url)
    require_loopback("REDIS_URL", redis_url)
    raise_open_files_limit()
    env = {
        **server_env(database_url, redis_url, secrets.token_urlsafe(50)),
        "WS_MAX_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
    }

    ensure_database(database_url)
    migrate(env)
    setup_django(env)
    redis = Redis(redis_url)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start")
    print(f"== setup: {COINS} coins, {USERS} users × {SOCKETS_PER_USER} sockets ==", flush=True)
    with eager_tasks():
        remove_bench_coins()
        desk = Desk()
        desk.sync()  # the first sync creates the coins and their quotes
        users = bench_users()
        reset_socket_counts(users)
        pairs = mint_tokens(users)
        close_connections()
        try:
            passed = measure(env, desk, pairs, redis)
        finally:
            end_sessions(pairs)
            reset_socket_counts(users)
            remove_bench_coins()
    print(f"total {time.perf_counter() - started:.1f}s; load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if passed else 1


def measure(env: dict[str, str], desk: Desk, pairs: list["TokenPair"], redis: Redis) -> bool:
    *user_pairs, warm_pair = pairs
    plan = socket_plan(user_pairs)
    with uvicorn_serving(env) as (server_pid, base_url):
        ws_url = base_url.replace("http://", "ws://", 1) + WS_PATH
        print(f"uvicorn pid {server_pid} at {base_url} (--ws websockets-sansio, one process, Redis channel layer)")
        with load_process_running(ws_url, base_url) as load:
            # Warm up: the coin list once, one socket through auth and subscribe, then gone before the count.
            load.call("connect", [(warm_pair.access, plan[0][1])])
            with httpx.Client(base_url=base_url, timeout=10.0, trust_env=False) as client:
                client.get(COINS_PATH, headers={"Authorization": f"Bearer {warm_pair.access}"}).raise_for_status()
            load.call("close")
            asgi_ms = server_request_costs(base_url, warm_pair.access, server_pid)
            print(
                f"GET {COINS_PATH} one at a time: uvicorn {asgi_ms['plain']:.2f} ms cpu per 200, "
                f"{asgi_ms['conditional']:.2f} ms per 304 (If-None-Match)"
            )
            time.sleep(SETTLE_S)

            print(f"== sockets: {SOCKETS} connect, authenticate, subscribe {COINS_PER_SOCKET} of the top {TOP} ==")
            empty = measure_idle(server_pid, redis, EMPTY_IDLE_S)
            rss_before = rss_mb(server_pid)
            connected = load.call("connect", plan)
            time.sleep(SETTLE_S)
            rss_after = rss_mb(server_pid)
            failures = "; ".join(f"{count}× {reason}" for reason, count in connected["failures"].items()) or "none"
            print(
                f"connected {connected['connected']}/{SOCKETS} in {connected['seconds']:.1f} s "
                f"(permessage-deflate on {connected['deflate']}; failures: {failures})"
            )
            per_socket_kb = 1024 * (rss_after - rss_before) / max(connected["connected"], 1)
            print(f"server RSS {rss_before:.1f} MB before, {rss_after:.1f} MB after: {per_socket_kb:.1f} KB per socket")
            idle = measure_idle(server_pid, redis, IDLE_S)
            print(
                f"idle {idle.seconds:.0f} s: server {idle.cpu_per_s:.3f} cpu s/s with {connected['connected']} sockets "
                f"({empty.cpu_per_s:.3f} with none); redis {idle.redis_cpu_s / idle.seconds:.3f} s/s"
            )

            print(f"== fan-out: {ROUNDS} syncs of {COINS} coins, every price new ==", flush=True)
            rounds = []
            for round_no in range(1, ROUNDS + 1):
                rounds.append(run_round(load, desk, server_pid, redis))
                describe_round(f"round {round_no}", rounds[-1:], idle)
                time.sleep(ROUND_GAP_S)
            describe_round("overall", rounds, idle)
            load.call("close")
            time.sleep(SETTLE_S)
            print(f"server RSS {rss_mb(server_pid):.1f} MB after the sockets closed")

            print(f"== polling: {SOCKETS} clients GET {COINS_PATH} every {POLL_INTERVAL_S:.0f} s for {POLL_S:.0f} s ==")
            tokens = [access for access, _coins in plan]
            polls = [
                run_polling(load, desk, tokens, server_pid, redis, conditional=conditional)
                for conditional in (False, True)
            ]
            for poll in polls:
                describe_polling(poll)
    wsgi_ms = wsgi_request_costs(user_pairs[0].access)
    return report(rounds, idle, polls, {"uvicorn": asgi_ms, "WSGI handler in process": wsgi_ms}, connected["connected"])


def report(
    rounds: list[Round], idle: Idle, polls: list[Polling], floors: dict[str, dict[str, float]], connected: int
) -> bool:
    sync_cpu = statistics.median(one.sync_cpu_s(idle) for one in rounds)
    idle_minute = idle.cpu_per_s * 60
    sockets_minute = idle_minute + sync_cpu
    fresh_minute = idle_minute + 12 * sync_cpu  # a sync every 5 s: as fresh as polling every 5 s promises
    latencies = [latency for one in rounds for latency in one.latencies(one.times.written)]
    message_bytes = statistics.median(one.bytes for one in rounds)
    print(f"== a minute of the desk: {SOCKETS} clients kept up to date, one sync per minute ==")
    print(
        "Server CPU only. Sockets: the idle rate with every socket open (a session check per socket every 5 s, a "
        f"client ping every {CLIENT_PING_S:.0f} s, uvicorn's keep-alive pings) × 60 s, plus one fan-out (a round's "
        f"CPU less the idle rate over it). Polling: CPU per request × {POLLS_PER_MINUTE:,.0f} requests (every "
        f"client every {POLL_INTERVAL_S:.0f} s), at the cost of one request at a time (the floor: no queue) and at "
        "the cost measured under the 1,000 pollers. The sync runs in a worker either way; its channel-layer sends "
        "cost that worker the CPU shown per round."
    )
    print(
        f"sockets: {idle_minute:.2f} idle + {sync_cpu:.2f} fan-out = {sockets_minute:.2f} cpu s/min "
        f"({fresh_minute:.2f} with a sync every 5 s, as fresh as polling promises); no request after connecting, "
        f"{message_bytes / 1e6:.2f} MB of messages per sync; prices arrive p50 {ms(percentile(latencies, 0.5))}, "
        f"max {ms(max(latencies, default=float('nan')))} after the commit"
    )
    if sync_cpu > 0:
        print(f"    at {sync_cpu:.2f} s per sync one process fans out at most {60 / sync_cpu:.0f} syncs per minute")

    def compare(label: str, cpu_ms: float) -> None:
        minute = cpu_ms * POLLS_PER_MINUTE / 1000
        spare = minute - idle_minute  # what polling costs beyond the idle sockets: room for fan-outs
        break_even = f"{spare / sync_cpu:.1f} syncs per minute" if sync_cpu > 0 and spare > 0 else "never"
        print(
            f"{label}: {cpu_ms:.2f} ms × {POLLS_PER_MINUTE:,.0f} = {minute:.2f} cpu s/min; polling / sockets = "
            f"{minute / sockets_minute:.2f} (one sync per minute), {minute / fresh_minute:.2f} (a sync every 5 s); "
            f"sockets cost as much at {break_even}"
        )

    for server, costs in floors.items():
        for kind, cpu_ms in costs.items():
            compare(f"polling, {kind}, one at a time on {server}", cpu_ms)
    for poll in polls:
        # Behind, the server also works on requests whose clients gave up: all of it is charged to the answers.
        load_note = "" if poll.kept_up else " (behind: work on abandoned requests included)"
        compare(f"polling, {poll.label}, {SOCKETS} pollers on uvicorn{load_note}", 1000 * poll.cpu_per_request)
        bodies = poll.body_bytes / max(poll.served, 1) * POLLS_PER_MINUTE
        print(
            f"    {bodies / 1e6:.1f} MB/min of bodies; {poll.rps:.0f} of {POLLS_PER_MINUTE / 60:.0f} req/s answered; "
            f"prices arrive p50 {percentile(poll.staleness, 0.5):.2f} s after the commit"
        )
    print(f"sockets save {POLLS_PER_MINUTE / 60:.0f} requests/s ({POLLS_PER_MINUTE:,.0f} a minute)")
    all_heard = all(one.complete == one.sockets == SOCKETS for one in rounds) and connected == SOCKETS
    floor = min(cpu_ms for costs in floors.values() for cpu_ms in costs.values())
    print(
        f"realtime bench: {sum(one.complete for one in rounds)}/{SOCKETS * len(rounds)} socket-rounds heard every "
        f"price (target all); commit → receive p50 {ms(percentile(latencies, 0.5))}, p95 "
        f"{ms(percentile(latencies, 0.95))}; polling / sockets cpu ≥ {floor * POLLS_PER_MINUTE / 1000 / sockets_minute:.2f} "
        f"at one sync per minute; failed polls {sum(poll.failures for poll in polls)} (reported) -> "
        f"{'PASS' if all_heard else 'FAIL'}"
    )
    return all_heard


if __name__ == "__main__":
    sys.exit(main())
