"""The CoinGecko client against a local double: retries, rate limits, validation, plan limits, the budget."""

import json
from decimal import Decimal

import httpx
import pytest

from market.budget import CallBudget, CallBudgetExhausted
from market.coingecko import CoinGeckoBadPayload, CoinGeckoError, CoinGeckoRateLimited, CoinGeckoUnavailable

from .conftest import html_page
from .payloads import GLOBAL, TRENDING, chart, market_row, markets

pytestmark = pytest.mark.django_db  # the budget lives in the shared cache


def test_markets_parses_exact_decimals(cg_mock, make_client):
    row = market_row("bitcoin", "BTC", 1)
    row["market_cap"] = 1270000000000
    # written by hand: a float in the test itself would already have lost the digits
    body = json.dumps([row]).replace('"current_price": 1,', '"current_price": 64123.123456789012,')
    cg_mock.get("/coins/markets").respond(content=body.encode(), headers={"content-type": "application/json"})
    rows, skipped = make_client().markets()
    assert skipped == {}
    assert rows[0].id == "bitcoin"
    assert rows[0].symbol == "btc"
    assert rows[0].current_price == Decimal("64123.123456789012")
    assert rows[0].market_cap == Decimal("1270000000000")
    assert rows[0].last_updated.isoformat() == "2026-11-22T10:00:00+00:00"


@pytest.mark.parametrize(("plan", "header"), [("demo", "x-cg-demo-api-key"), ("pro", "x-cg-pro-api-key")])
def test_api_key_header_by_plan(cg_mock, make_client, plan, header):
    route = cg_mock.get("/coins/markets").respond(json=markets(1))
    make_client(api_key="k-123", plan=plan).markets()
    sent = route.calls.last.request
    assert sent.headers[header] == "k-123"
    other = "x-cg-pro-api-key" if header == "x-cg-demo-api-key" else "x-cg-demo-api-key"
    assert other not in sent.headers


def test_429_waits_retry_after_then_succeeds(cg_mock, make_client, sleeps):
    cg_mock.get("/coins/markets").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=markets(2))]
    )
    client = make_client()
    rows, _ = client.markets()
    assert len(rows) == 2
    assert client.calls == 2
    assert 7 <= sleeps[0] <= 8.5  # never before Retry-After, plus jitter


def test_429_with_a_long_wait_is_handed_back(cg_mock, make_client, sleeps):
    cg_mock.get("/coins/markets").respond(429, headers={"Retry-After": "120"})
    with pytest.raises(CoinGeckoRateLimited) as caught:
        make_client().markets()
    assert caught.value.retry_after_s >= 120
    assert sleeps == []  # the task retries later instead of holding a worker


def test_5xx_html_pages_are_retried_with_backoff_then_unavailable(cg_mock, make_client, sleeps):
    route = cg_mock.get("/coins/markets").mock(return_value=html_page(502))
    with pytest.raises(CoinGeckoUnavailable):
        make_client(max_retries=3).markets()
    assert route.call_count == 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2]


def test_5xx_then_success(cg_mock, make_client):
    cg_mock.get("/coins/markets").mock(side_effect=[html_page(503), httpx.Response(200, json=markets(1))])
    rows, _ = make_client().markets()
    assert [row.id for row in rows] == ["coin-1"]


def test_timeouts_are_retried_then_unavailable(cg_mock, make_client):
    route = cg_mock.get("/coins/markets").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(CoinGeckoUnavailable, match="timed out 3 times"):
        make_client(max_retries=2).markets()
    assert route.call_count == 3


def test_html_with_200_is_a_bad_payload(cg_mock, make_client):
    cg_mock.get("/coins/markets").mock(return_value=html_page(200))
    with pytest.raises(CoinGeckoBadPayload, match="expected JSON"):
        make_client().markets()


def test_truncated_json_is_a_bad_payload(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(
        200, content=b'[{"id": "bitcoin", "current_pr', headers={"content-type": "application/json"}
    )
    with pytest.raises(CoinGeckoBadPayload, match="malformed JSON"):
        make_client().markets()


def test_other_4xx_is_an_error_not_retried(cg_mock, make_client):
    route = cg_mock.get("/coins/markets").respond(401, json={"error": "invalid key"})
    with pytest.raises(CoinGeckoError, match="HTTP 401"):
        make_client().markets()
    assert route.call_count == 1


def test_bad_records_are_skipped_with_reasons(cg_mock, make_client):
    missing_name = market_row("no-name", "nn", 1)
    del missing_name["name"]
    wrong_type = market_row("wrong-type", "wt", 1)
    wrong_type["current_price"] = "12.5"
    negative = market_row("negative", "neg", -1)
    no_time = market_row("no-time", "nt", 1)
    no_time["last_updated"] = "yesterday"
    payload = [
        market_row("good", "gd", 1, rank=1),
        market_row("null-price", "np", None),
        missing_name,
        wrong_type,
        negative,
        no_time,
        market_row("good", "gd", 2),
        "not an object",
    ]
    cg_mock.get("/coins/markets").respond(json=payload)
    rows, skipped = make_client().markets()
    assert [row.id for row in rows] == ["good"]
    assert skipped == {
        "null-price": "current_price is null",
        "no-name": "missing name",
        "wrong-type": "current_price is str, not a number",
        "negative": "current_price is negative",
        "no-time": "last_updated is not an ISO 8601 time",
        "good (duplicate)": "listed twice in one answer",
        "#7": "not an object",
    }


def test_duplicate_symbols_are_different_coins(cg_mock, make_client):
    cg_mock.get("/coins/markets").respond(
        json=[market_row("uniswap", "uni", 6, rank=20), market_row("universe", "uni", 1, rank=900)]
    )
    rows, skipped = make_client().markets()
    assert {row.id for row in rows} == {"uniswap", "universe"}
    assert skipped == {}


@pytest.mark.parametrize(("plan", "asked", "sent"), [("demo", 3650, "365"), ("demo", 30, "30"), ("pro", 3650, "3650")])
def test_history_never_asks_more_than_the_plan_serves(cg_mock, make_client, plan, asked, sent):
    route = cg_mock.get("/coins/bitcoin/market_chart").respond(json=chart([(1000, 1.5), (2000, 2)]))
    series = make_client(plan=plan).market_chart("bitcoin", days=asked)
    assert route.calls.last.request.url.params["days"] == sent
    assert series.prices == [(1000, Decimal("1.5")), (2000, Decimal("2"))]
    assert series.market_caps[1000] == Decimal("1500.0")


def test_history_null_points_are_gaps_and_bad_points_fail(cg_mock, make_client):
    cg_mock.get("/coins/a/market_chart").respond(
        json={"prices": [[1000, None], [2000, 3]], "market_caps": [], "total_volumes": []}
    )
    assert make_client().market_chart("a", days=1).prices == [(2000, Decimal("3"))]
    cg_mock.get("/coins/b/market_chart").respond(json={"prices": [[1000]], "market_caps": [], "total_volumes": []})
    with pytest.raises(CoinGeckoBadPayload):
        make_client().market_chart("b", days=1)


def test_trending_and_global(cg_mock, make_client):
    cg_mock.get("/search/trending").respond(json=TRENDING)
    cg_mock.get("/global").respond(json=GLOBAL)
    client = make_client()
    assert [item.id for item in client.trending()] == ["coin-2", "newcoin"]
    stats = client.global_stats()
    assert stats.total_market_cap == Decimal("3100000000000.5")
    assert stats.btc_dominance == Decimal("56.12345678")
    assert stats.as_of.isoformat() == "2026-11-22T10:00:00+00:00"


def test_global_missing_fields_is_a_bad_payload(cg_mock, make_client):
    cg_mock.get("/global").respond(json={"data": {"total_market_cap": {}}})
    with pytest.raises(CoinGeckoBadPayload):
        make_client().global_stats()


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_budget_never_exceeds_the_limit_in_any_window():
    clock = FakeClock()
    budget = CallBudget(limit=5, window_s=60, key="test:budget", clock=clock, sleep=clock.sleep)
    taken: list[float] = []
    for _ in range(17):
        budget.acquire(max_wait_s=120)
        taken.append(clock.now)
        clock.now += 1.5
    for start in taken:
        in_window = [t for t in taken if start <= t < start + 60]
        assert len(in_window) <= 5
    assert clock.slept  # it queued instead of overrunning


def test_budget_gives_up_past_the_allowed_wait():
    clock = FakeClock()
    budget = CallBudget(limit=2, window_s=60, key="test:budget2", clock=clock, sleep=clock.sleep)
    budget.acquire()
    budget.acquire()
    with pytest.raises(CallBudgetExhausted) as caught:
        budget.acquire(max_wait_s=5)
    assert 59 <= caught.value.retry_after_s <= 60


def test_client_calls_count_against_the_shared_budget(cg_mock, make_client, sleeps):
    clock = FakeClock()
    cg_mock.get("/coins/markets").respond(json=markets(1))
    budget = CallBudget(limit=2, window_s=60, key="test:budget3", clock=clock, sleep=clock.sleep)
    first, second = make_client(budget=budget), make_client(budget=budget)
    first.markets()
    second.markets()
    with pytest.raises(CallBudgetExhausted):
        make_client(budget=budget, max_inline_wait_s=1).markets()
