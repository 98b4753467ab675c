"""The only code that talks to CoinGecko: budgeted, retried, and every payload validated before use."""

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from cryptodesk.money import to_decimal
from cryptodesk.timestamps import from_ms

from .budget import CallBudget, CallBudgetExhausted

DEMO_PLAN_MAX_DAYS = 365
USER_AGENT = "CryptoDesk market sync"

__all__ = [
    "DEMO_PLAN_MAX_DAYS",
    "CallBudgetExhausted",
    "CoinGeckoBadPayload",
    "CoinGeckoClient",
    "CoinGeckoError",
    "CoinGeckoRateLimited",
    "CoinGeckoUnavailable",
    "GlobalSnapshot",
    "HistorySeries",
    "MarketRow",
    "TrendingItem",
]


class CoinGeckoError(Exception):
    """CoinGecko said no, or said something we cannot use."""


class CoinGeckoUnavailable(CoinGeckoError):
    """5xx or no answer, even after retries: transient, try the job again later."""


class CoinGeckoRateLimited(CoinGeckoError):
    """429 with a wait longer than we hold a worker for."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"CoinGecko rate limit; retry after {retry_after_s:.0f}s")
        self.retry_after_s = retry_after_s


class CoinGeckoBadPayload(CoinGeckoError):
    """The answer is not the JSON we expect (HTML error page, truncated, wrong shape)."""


@dataclass(frozen=True)
class MarketRow:
    id: str
    symbol: str
    name: str
    image: str
    current_price: Decimal
    market_cap: Decimal | None
    total_volume: Decimal | None
    price_change_percentage_24h: Decimal | None
    market_cap_rank: int | None
    high_24h: Decimal | None
    low_24h: Decimal | None
    last_updated: datetime
    sparkline: list[Decimal] = field(default_factory=list)


@dataclass(frozen=True)
class HistorySeries:
    """Points as (epoch ms, value), oldest first."""

    prices: list[tuple[int, Decimal]]
    market_caps: dict[int, Decimal]
    total_volumes: dict[int, Decimal]


@dataclass(frozen=True)
class TrendingItem:
    id: str
    symbol: str
    name: str
    market_cap_rank: int | None
    score: int
    image: str


@dataclass(frozen=True)
class GlobalSnapshot:
    total_market_cap: Decimal
    total_volume: Decimal
    btc_dominance: Decimal
    eth_dominance: Decimal | None
    market_cap_change_percentage_24h: Decimal | None
    active_cryptocurrencies: int | None
    as_of: datetime


class _Invalid(ValueError):
    """One field of one record is unusable."""


# --- field readers: each raises _Invalid with a reason a person can act on -----------------------


def _str(record: dict, name: str, *, required: bool = True) -> str:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise _Invalid(f"missing {name}")
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{name} is {type(value).__name__}, not text")
    return value.strip()


def _number(record: dict, name: str, *, required: bool = False, places: int = 18) -> Decimal | None:
    value = record.get(name)
    if value is None:
        if required:
            raise _Invalid(f"{name} is null")
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Invalid(f"{name} is {type(value).__name__}, not a number")
    try:
        number = to_decimal(value, places=places)
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"{name}: {exc}") from None
    if number < 0 and name not in {"price_change_percentage_24h", "market_cap_change_percentage_24h_usd"}:
        raise _Invalid(f"{name} is negative")
    return number


def _int(record: dict, name: str) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{name} is {type(value).__name__}, not a whole number")
    return value


def _time(record: dict, name: str) -> datetime:
    raw = _str(record, name)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid(f"{name} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Invalid(f"{name} has no time zone")
    return moment.astimezone(UTC)


def _parse_market_row(record: Any) -> MarketRow:
    if not isinstance(record, dict):
        raise _Invalid("not an object")
    sparkline_raw = (record.get("sparkline_in_7d") or {}).get("price") or []
    if not isinstance(sparkline_raw, list):
        raise _Invalid("sparkline_in_7d.price is not a list")
    sparkline = [to_decimal(p) for p in sparkline_raw if isinstance(p, int | Decimal) and not isinstance(p, bool)]
    return MarketRow(
        id=_str(record, "id"),
        symbol=_str(record, "symbol").lower(),
        name=_str(record, "name"),
        image=_str(record, "image", required=False),
        current_price=_number(record, "current_price", required=True),
        market_cap=_number(record, "market_cap"),
        total_volume=_number(record, "total_volume"),
        price_change_percentage_24h=_number(record, "price_change_percentage_24h", places=8),
        market_cap_rank=_int(record, "market_cap_rank"),
        high_24h=_number(record, "high_24h"),
        low_24h=_number(record, "low_24h"),
        last_updated=_time(record, "last_updated"),
        sparkline=sparkline,
    )


def _pairs(payload: dict, name: str) -> list[tuple[int, Decimal]]:
    rows = payload.get(name)
    if not isinstance(rows, list):
        raise CoinGeckoBadPayload(f"market_chart.{name} is not a list")
    pairs = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], int | Decimal)):
            raise CoinGeckoBadPayload(f"market_chart.{name} has a malformed point: {str(row)[:60]}")
        if row[1] is None:
            continue  # CoinGecko leaves gaps as null: a gap, not a zero
        try:
            value = _number({"v": row[1]}, "v", required=True)
        except _Invalid as exc:
            raise CoinGeckoBadPayload(f"market_chart.{name}: {exc}") from None
        pairs.append((int(row[0]), value))
    return pairs


class CoinGeckoClient:
    """A CoinGecko v3 client: every call budgeted, timed out, retried when transient, validated."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        plan: str | None = None,
        budget: CallBudget | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        max_inline_wait_s: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = (base_url or settings.COINGECKO_BASE_URL).rstrip("/")
        self.plan = plan or settings.COINGECKO_API_PLAN
        api_key = settings.COINGECKO_API_KEY if api_key is None else api_key
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if api_key:
            headers["x-cg-pro-api-key" if self.plan == "pro" else "x-cg-demo-api-key"] = api_key
        self.http = httpx.Client(headers=headers, timeout=timeout_s, transport=transport, follow_redirects=False)
        self.budget = budget or CallBudget()
        self.max_retries = max_retries
        self.max_inline_wait_s = max_inline_wait_s
        self.sleep = sleep
        self.calls = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "CoinGeckoClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- endpoints --------------------------------------------------------------------------------

    def markets(self, *, per_page: int = 250, page: int = 1) -> tuple[list[MarketRow], dict[str, str]]:
        """Top coins by market cap: (valid rows, {coin id or position: why it was skipped})."""
        payload = self._get(
            "/coins/markets",
            {
                "vs_currency": "usd",
                "order": "market_cap_desc",
                "per_page": per_page,
                "page": page,
                "sparkline": "true",
                "price_change_percentage": "24h",
            },
        )
        if not isinstance(payload, list):
            raise CoinGeckoBadPayload("coins/markets did not return a list")
        rows: list[MarketRow] = []
        skipped: dict[str, str] = {}
        seen: set[str] = set()
        for position, record in enumerate(payload):
            label = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else None
            label = label or f"#{position}"
            try:
                row = _parse_market_row(record)
            except _Invalid as exc:
                skipped[label] = str(exc)
                continue
            if row.id in seen:
                skipped[f"{row.id} (duplicate)"] = "listed twice in one answer"
                continue
            seen.add(row.id)
            rows.append(row)
        return rows, skipped

    def max_history_days(self) -> int | None:
        """None means no limit (pro plans); the demo plan serves a year."""
        return None if self.plan == "pro" else DEMO_PLAN_MAX_DAYS

    def market_chart(self, coin_id: str, *, days: int) -> HistorySeries:
        limit = self.max_history_days()
        if days < 1:
            raise ValueError("days must be at least 1")
        if limit is not None:
            days = min(days, limit)  # never ask for more than the plan serves
        payload = self._get(f"/coins/{coin_id}/market_chart", {"vs_currency": "usd", "days": days})
        if not isinstance(payload, dict):
            raise CoinGeckoBadPayload("market_chart did not return an object")
        return HistorySeries(
            prices=_pairs(payload, "prices"),
            market_caps=dict(_pairs(payload, "market_caps")) if "market_caps" in payload else {},
            total_volumes=dict(_pairs(payload, "total_volumes")) if "total_volumes" in payload else {},
        )

    def trending(self) -> list[TrendingItem]:
        payload = self._get("/search/trending", {})
        coins = payload.get("coins") if isinstance(payload, dict) else None
        if not isinstance(coins, list):
            raise CoinGeckoBadPayload("search/trending has no coins list")
        items = []
        for index, entry in enumerate(coins):
            item = entry.get("item") if isinstance(entry, dict) else None
            if not isinstance(item, dict):
                continue
            try:
                items.append(
                    TrendingItem(
                        id=_str(item, "id"),
                        symbol=_str(item, "symbol").lower(),
                        name=_str(item, "name"),
                        market_cap_rank=_int(item, "market_cap_rank"),
                        score=_int(item, "score") if item.get("score") is not None else index,
                        image=_str(item, "large", required=False) or _str(item, "small", required=False),
                    )
                )
            except _Invalid:
                continue  # one odd trending entry is not worth failing the list
        return items

    def global_stats(self) -> GlobalSnapshot:
        payload = self._get("/global", {})
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise CoinGeckoBadPayload("global has no data object")
        try:
            caps, volumes, shares = (
                data.get(k) or {} for k in ("total_market_cap", "total_volume", "market_cap_percentage")
            )
            updated = _int(data, "updated_at")
            return GlobalSnapshot(
                total_market_cap=_number(caps, "usd", required=True),
                total_volume=_number(volumes, "usd", required=True),
                btc_dominance=_number(shares, "btc", required=True, places=8),
                eth_dominance=_number(shares, "eth", places=8),
                market_cap_change_percentage_24h=_number(data, "market_cap_change_percentage_24h_usd", places=8),
                active_cryptocurrencies=_int(data, "active_cryptocurrencies"),
                as_of=from_ms(updated * 1000) if updated else timezone.now(),
            )
        except (_Invalid, AttributeError) as exc:
            raise CoinGeckoBadPayload(f"global: {exc}") from None

    # --- transport ----------------------------------------------------------------------------------

    def _get(self, path: str, params: dict) -> Any:
        for attempt in range(self.max_retries + 1):
            last_try = attempt == self.max_retries
            self.budget.acquire(max_wait_s=self.max_inline_wait_s)
            self.calls += 1
            try:
                response = self.http.get(f"{self.base_url}{path}", params=params)
            except httpx.TimeoutException:
                if last_try:
                    raise CoinGeckoUnavailable(f"{path}: timed out {attempt + 1} times") from None
                self.sleep(_backoff(attempt))
                continue
            except httpx.TransportError as exc:
                if last_try:
                    raise CoinGeckoUnavailable(f"{path}: {exc.__class__.__name__}") from None
                self.sleep(_backoff(attempt))
                continue

            if response.status_code == 429:
                wait_s = _retry_after(response) + random.uniform(0, 1.5)
                if last_try or wait_s > self.max_inline_wait_s:
                    raise CoinGeckoRateLimited(wait_s)
                self.sleep(wait_s)
                continue
            if response.status_code >= 500:
                if last_try:
                    raise CoinGeckoUnavailable(f"{path}: HTTP {response.status_code}")
                self.sleep(_backoff(attempt))
                continue
            if response.status_code >= 400:
                raise CoinGeckoError(f"{path}: HTTP {response.status_code}")
            return _json(response, path)
        raise AssertionError("unreachable")  # pragma: no cover


def _json(response: httpx.Response, path: str) -> Any:
    content_type = response.headers.get("content-type", "")
    if "json" not in content_type:
        raise CoinGeckoBadPayload(f"{path}: expected JSON, got {content_type or 'no content type'}")
    try:
        return json.loads(response.content, parse_float=Decimal, parse_constant=_no_constants)
    except ValueError as exc:
        raise CoinGeckoBadPayload(f"{path}: malformed JSON ({exc})") from None


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number")


def _backoff(attempt: int) -> float:
    return min(2**attempt, 8) + random.uniform(0, 0.5)


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "").strip()
    if raw.isdigit():
        return float(raw)
    if raw:
        try:
            moment = parsedate_to_datetime(raw)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # HTTP dates are GMT
            return max(0.0, (moment - timezone.now()).total_seconds())
        except (TypeError, ValueError):
            pass
    return 60.0  # CoinGecko's window is a minute
