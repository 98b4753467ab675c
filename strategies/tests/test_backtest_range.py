"""A backtest runs on bars of its timeframe only: a range the timeframe's stored history does not cover is refused
before it is queued (API and form), naming the covered range; the result says which range it used."""

import itertools
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from conftest import PASSWORD
from market.demo.snapshot import load_snapshot
from market.models import Coin, PricePoint, Quote
from strategies import services
from strategies.models import Backtest, Strategy

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _mixed_history(coin: Coin, *, now: datetime) -> datetime:
    """What retention leaves: a year of daily points (at midnight UTC), then hourly points for the last week.
    Returns the first hourly point."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hourly_from = midnight - 7 * DAY + timedelta(minutes=30)
    points = [
        PricePoint(coin=coin, ts=midnight - day * DAY, price=Decimal(20_000 + (day * 37) % 900))
        for day in range(8, 366)
    ]
    moment, step = hourly_from, 0
    while moment <= now:
        points.append(PricePoint(coin=coin, ts=moment, price=Decimal(21_000 + (step * 53) % 1_300)))
        moment += HOUR
        step += 1
    PricePoint.objects.bulk_create(points)
    return hourly_from


@pytest.fixture
def now():
    return timezone.now().replace(second=0, microsecond=0)


@pytest.fixture
def bitcoin(db, now) -> Coin:
    coin = Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)
    Quote.objects.create(coin=coin, current_price="21000", last_updated=now)
    return coin


@pytest.fixture
def hourly_from(bitcoin, now) -> datetime:
    return _mixed_history(bitcoin, now=now)


def _strategy(owner, coin, timeframe: str) -> Strategy:
    return services.create_strategy(
        owner=owner,
        name=f"Cross {timeframe}",
        kind="sma_crossover",
        params={"fast": 3, "slow": 8},
        coin=coin,
        timeframe=timeframe,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _post(api, strategy, start: datetime, end: datetime, capture):
    with capture(execute=True):
        return api.post(
            f"/api/v1/strategies/{strategy.pk}/backtests/",
            {"start": _iso(start), "end": _iso(end)},
            format="json",
        )


def _spacings_ms(curve: list) -> set[int]:
    return {b[0] - a[0] for a, b in itertools.pairwise(curve)}


def test_an_hourly_backtest_over_a_year_of_daily_history_is_refused_naming_the_covered_range(
    alice, alice_api, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    response = _post(alice_api, strategy, now - 365 * DAY, now, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    (message,) = body["errors"]["start"]
    newest = PricePoint.objects.latest("ts").ts
    assert f"covers {hourly_from:%Y-%m-%d %H:%M} to {newest:%Y-%m-%d %H:%M} UTC" in message
    assert f"on or after {hourly_from:%Y-%m-%d %H:%M} UTC" in message
    assert f"whole days: from {(hourly_from + DAY).date():%Y-%m-%d}" in message
    assert "or the 1d timeframe" in message
    assert body["detail"] == message
    assert not Backtest.objects.exists()


def test_an_hourly_range_inside_the_hourly_history_runs_on_hourly_bars_only(
    alice, alice_api, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    response = _post(alice_api, strategy, hourly_from, now, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = alice_api.get(f"/api/v1/backtests/{response.json()['id']}/").json()
    assert body["status"] == "succeeded", body["error"]
    first_bar, last_bar = hourly_from.replace(minute=0), PricePoint.objects.latest("ts").ts.replace(minute=0)
    assert (body["data_start"], body["data_end"]) == (_iso(first_bar), _iso(last_bar))
    assert body["bars"] == len(body["equity_curve"]) == (last_bar - first_bar) // HOUR + 1
    assert _spacings_ms(body["equity_curve"]) == {3_600_000}


def test_a_daily_backtest_over_the_same_history_is_uniform_daily_bars(
    alice, alice_api, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1d")
    response = _post(alice_api, strategy, now - 300 * DAY, now, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    body = alice_api.get(f"/api/v1/backtests/{response.json()['id']}/").json()
    assert body["status"] == "succeeded", body["error"]
    assert _spacings_ms(body["equity_curve"]) == {86_400_000}
    first_bar, last_bar = (datetime.fromisoformat(body[name]) for name in ("data_start", "data_end"))
    assert first_bar == (now - 300 * DAY).replace(hour=0, minute=0) + DAY  # the first day with a point in range
    assert body["bars"] == (last_bar - first_bar) // DAY + 1 == 300


def test_a_range_before_the_hourly_history_is_refused_too(
    alice, alice_api, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    response = _post(alice_api, strategy, now - 60 * DAY, now - 30 * DAY, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert f"covers {hourly_from:%Y-%m-%d %H:%M} to" in response.json()["errors"]["start"][0]
    assert not Backtest.objects.exists()


def test_the_demo_year_is_refused_for_hourly_bars(alice, alice_api, django_capture_on_commit_callbacks):
    """The demo market: a year of daily points and a week of hourly ones (526 points for bitcoin)."""
    load_snapshot()
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    end = timezone.now()
    response = _post(alice_api, strategy, end - 365 * DAY, end, django_capture_on_commit_callbacks)
    assert response.status_code == 400
    assert "1h history of Bitcoin covers" in response.json()["errors"]["start"][0]


def test_a_mixed_range_queued_anyway_runs_on_the_covered_bars(alice, hourly_from, now):
    """Retention may thin the history between queueing and running: the run still never mixes bar sizes."""
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    backtest = Backtest.objects.create(
        strategy=strategy,
        owner=alice,
        kind=strategy.kind,
        params=strategy.params,
        coin=strategy.coin,
        timeframe="1h",
        start=now - 30 * DAY,
        end=now,
        initial_capital=Decimal(10_000),
        fee_bps=Decimal(10),
        slippage_bps=Decimal(0),
    )
    services.run_backtest(backtest.pk)
    backtest.refresh_from_db()
    assert backtest.status == Backtest.Status.SUCCEEDED, backtest.error
    assert backtest.data_start == hourly_from.replace(minute=0)
    assert _spacings_ms(backtest.equity_curve) == {3_600_000}


# --- the browser form -----------------------------------------------------------------------------


def _field_errors(response, name: str) -> list[str]:
    return re.findall(rf'data-field-error="{re.escape(name)}">([^<]+)<', response.content.decode())


@pytest.fixture
def alice_client(client, alice):
    assert client.post("/login/", {"email": alice.email, "password": PASSWORD}).status_code == 302
    return client


def _form_post(client, strategy, start, end, capture):
    body = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "initial_capital": "10000",
        "fee_bps": "10",
        "slippage_bps": "0",
    }
    with capture(execute=True):
        return client.post(f"/strategies/{strategy.pk}/backtests/", body)


def test_the_form_shows_the_covered_range_beside_the_start(
    alice, alice_client, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    today = now.date()
    response = _form_post(
        alice_client, strategy, today - timedelta(days=365), today, django_capture_on_commit_callbacks
    )
    assert response.status_code == 400
    (message,) = _field_errors(response, "start")
    assert f"covers {hourly_from:%Y-%m-%d %H:%M} to" in message
    assert f"whole days: from {(hourly_from + DAY).date():%Y-%m-%d}" in message
    assert not Backtest.objects.exists()


def test_the_suggested_whole_day_runs_and_the_result_shows_the_range_used(
    alice, alice_client, hourly_from, now, django_capture_on_commit_callbacks
):
    strategy = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    first_day = (hourly_from + DAY).date()
    response = _form_post(alice_client, strategy, first_day, now.date(), django_capture_on_commit_callbacks)
    assert response.status_code == 302, _field_errors(response, "start")
    backtest = Backtest.objects.get()
    assert backtest.status == Backtest.Status.SUCCEEDED, backtest.error
    page = alice_client.get(response.url).content.decode()
    used = re.search(r'data-testid="range-used">([^<]+)<', page)
    assert used is not None
    last_bar = backtest.data_end.astimezone(UTC)
    assert used.group(1) == f"{first_day:%b} {first_day.day}, {first_day.year} 00:00 – " + (
        f"{last_bar:%b} {last_bar.day}, {last_bar.year} {last_bar:%H:%M}"
    )


def test_a_few_missing_hours_do_not_cut_the_hourly_history_but_a_day_apart_does():
    from strategies.engine.backtest import GAP_BARS_MAX, covered_from

    hour = 3_600_000
    hourly = [i * hour for i in range(10)]
    with_gap = [*hourly, hourly[-1] + GAP_BARS_MAX * hour, hourly[-1] + (GAP_BARS_MAX + 1) * hour]
    assert covered_from(np.array(with_gap), "1h") == 0
    daily_then_hourly = [day * 24 * hour for day in range(5)] + [4 * 24 * hour + i * hour for i in range(1, 5)]
    assert covered_from(np.array(daily_then_hourly), "1h") == 4  # the last daily point opens the hourly stretch
    assert covered_from(np.array(daily_then_hourly), "1d") == 0
    beyond = [*hourly, hourly[-1] + (GAP_BARS_MAX + 1) * hour]
    assert covered_from(np.array(beyond), "1h") == len(beyond) - 1


def test_a_long_curve_is_sampled_at_an_even_stride_keeping_the_last_bar():
    rows = [[i * 3_600_000, str(i)] for i in range(6_001)]
    sampled = services._sample(rows, 2_500)
    assert len(sampled) <= 2_500
    assert sampled[-1] is rows[-1]
    assert _spacings_ms(sampled[:-1]) == {3 * 3_600_000}
    assert services._sample(rows[:2_500], 2_500) == rows[:2_500]


def test_the_metrics_date_the_deepest_fall():
    from strategies.engine import backtest as engine
    from strategies.engine import metrics

    day = 86_400_000
    close = np.array([100.0, 120.0, 90.0, 60.0, 80.0, 130.0, 65.0, 140.0])
    times = np.arange(len(close), dtype=np.int64) * day
    result = engine.run(
        kind="dca",
        params={"amount": 10_000, "every_days": 30},
        times=times,
        close=close,
        capital=10_000.0,
        fee_bps=0.0,
        slippage_bps=0.0,
    )
    figures = metrics.compute(result, capital=10_000.0)
    assert figures["max_drawdown"] == pytest.approx(0.5)  # 120 → 60 (130 → 65 is as deep: the first one counts)
    assert figures["max_drawdown_at"] == 3 * day
    flat = engine.run(
        kind="dca",
        params={"amount": 10_000, "every_days": 30},
        times=times,
        close=np.full(len(close), 100.0),
        capital=10_000.0,
        fee_bps=0.0,
        slippage_bps=0.0,
    )
    assert metrics.compute(flat, capital=10_000.0)["max_drawdown_at"] is None


def test_an_hourly_strategys_form_starts_on_the_first_whole_covered_day(alice, alice_client, hourly_from, now):
    hourly = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1h")
    daily = _strategy(alice, Coin.objects.get(pk="bitcoin"), "1d")
    page = alice_client.get(f"/strategies/{hourly.pk}/").content.decode()
    assert f'name="start" value="{(hourly_from + DAY).date().isoformat()}"' in page
    page = alice_client.get(f"/strategies/{daily.pk}/").content.decode()
    assert f'name="start" value="{(now.date() - timedelta(days=365)).isoformat()}"' in page
