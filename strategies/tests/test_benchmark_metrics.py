"""Backtests against buy-and-hold of the same coin over the same bars: alpha, beta, tracking error and information
ratio from daily returns, cross-checked with empyrical."""

import math
import re
from datetime import timedelta

import empyrical
import numpy as np
import pytest
from django.utils import timezone

from market.models import Coin
from strategies.engine import backtest, metrics
from strategies.engine.kinds import validate
from strategies.models import Backtest

from .test_pages import log_in, strategy_for

DAY = 86_400_000
HOUR = 3_600_000
START = 1_700_000_000_000 // DAY * DAY
FIGURES = ("alpha", "beta", "tracking_error", "information_ratio")


def _walk(seed: int, bars: int, *, step_ms: int = DAY) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.03, bars)))
    return START + np.arange(bars, dtype=np.int64) * step_ms, close


def _empyrical(returns: np.ndarray, benchmark: np.ndarray) -> dict[str, float]:
    alpha, beta = empyrical.alpha_beta(returns, benchmark, risk_free=0.0, annualization=365)
    return {
        "alpha": alpha,
        "beta": beta,
        "tracking_error": empyrical.annual_volatility(returns - benchmark, annualization=365),
        "information_ratio": empyrical.excess_sharpe(returns, benchmark) * math.sqrt(365),
    }


def _close(ours: dict, theirs: dict) -> None:
    for name in FIGURES:
        assert ours[name] is not None, name
        assert abs(ours[name] - theirs[name]) <= 1e-9 * max(1.0, abs(theirs[name])), (name, ours[name], theirs[name])


@pytest.mark.parametrize("seed", range(6))
def test_relative_figures_match_empyrical(seed):
    rng = np.random.default_rng(seed)
    days = int(rng.choice([2, 3, 40, 365, 1000]))
    benchmark = rng.normal(0.001, 0.04, days)
    returns = benchmark * rng.uniform(-1, 2) + rng.normal(0, 0.02, days)
    _close(metrics.relative(returns, benchmark), _empyrical(returns, benchmark))


@pytest.mark.parametrize(("kind", "params"), [("sma_crossover", {"fast": 5, "slow": 20}), ("rsi_reversion", {})])
def test_backtest_metrics_are_against_buy_and_hold_of_the_same_bars(kind, params):
    times, close = _walk(3, 500)
    result = backtest.run(
        kind=kind,
        params=validate(kind, params),
        times=times,
        close=close,
        capital=10_000,
        fee_bps=10,
        slippage_bps=5,
    )
    figures = metrics.compute(result, capital=10_000)
    equity = result.equity  # daily bars: one a day
    hold = 10_000 * close / close[0]  # the buy-and-hold equity the curve carries
    _close(figures, _empyrical(equity[1:] / equity[:-1] - 1, hold[1:] / hold[:-1] - 1))


def test_hourly_bars_are_measured_on_daily_returns():
    times, close = _walk(5, 24 * 60, step_ms=HOUR)
    result = backtest.run(
        kind="ema_crossover",
        params={"fast": 12, "slow": 48},
        times=times,
        close=close,
        capital=1_000,
        fee_bps=10,
        slippage_bps=0,
    )
    figures = metrics.compute(result, capital=1_000)
    day_ends = np.arange(23, len(close), 24)  # the last hourly bar of each UTC day
    equity, held = result.equity[day_ends], close[day_ends]
    _close(figures, _empyrical(equity[1:] / equity[:-1] - 1, held[1:] / held[:-1] - 1))


def test_holding_the_coin_is_the_benchmark():
    times, close = _walk(8, 200)
    result = backtest.run(
        kind="dca",
        params={"amount": 1_000, "every_days": 365},  # everything on the first bar, held to the end
        times=times,
        close=close,
        capital=1_000,
        fee_bps=0,
        slippage_bps=0,
    )
    figures = metrics.compute(result, capital=1_000)
    assert figures["beta"] == pytest.approx(1, abs=1e-12)
    assert figures["alpha"] == pytest.approx(0, abs=1e-12)
    assert figures["tracking_error"] == pytest.approx(0, abs=1e-12)


def test_a_strategy_that_never_buys_has_no_beta_and_trails_the_coin():
    times, close = _walk(4, 120)
    result = backtest.run(
        kind="breakout",
        params=validate("breakout", {"lookback": 500}),
        times=times,
        close=close,
        capital=1_000,
        fee_bps=10,
        slippage_bps=0,
    )
    assert result.trades == []
    figures = metrics.compute(result, capital=1_000)
    moves = close[1:] / close[:-1] - 1
    assert figures["beta"] == 0
    assert figures["alpha"] == 0
    assert figures["tracking_error"] == pytest.approx(moves.std(ddof=1) * math.sqrt(365), rel=1e-12)
    assert figures["information_ratio"] == pytest.approx(-moves.mean() / moves.std(ddof=1) * math.sqrt(365), rel=1e-12)


def test_a_flat_coin_leaves_beta_and_alpha_out():
    times = START + np.arange(60, dtype=np.int64) * DAY
    result = backtest.run(
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        times=times,
        close=np.full(60, 100.0),
        capital=1_000,
        fee_bps=10,
        slippage_bps=0,
    )
    figures = metrics.compute(result, capital=1_000)
    assert (figures["alpha"], figures["beta"]) == (None, None)  # nothing to regress on
    assert figures["tracking_error"] == 0  # never traded: equity as flat as the coin
    assert figures["information_ratio"] is None


def test_one_day_has_no_figures():
    result = backtest.run(
        kind="sma_crossover",
        params={"fast": 2, "slow": 3},
        times=START + np.arange(2, dtype=np.int64) * HOUR,
        close=np.array([100.0, 101.0]),
        capital=1_000,
        fee_bps=10,
        slippage_bps=0,
    )
    figures = metrics.compute(result, capital=1_000)
    assert [figures[name] for name in FIGURES] == [None] * 4


# --- the results page ------------------------------------------------------------------------------


@pytest.fixture
def bitcoin(db) -> Coin:
    return Coin.objects.create(id="bitcoin", symbol="btc", name="Bitcoin", market_cap_rank=1)


def _finished(owner, coin: Coin, metrics_: dict) -> Backtest:
    strategy = strategy_for(owner, coin)
    end = timezone.now()
    return Backtest.objects.create(
        strategy=strategy,
        owner=owner,
        kind=strategy.kind,
        params=strategy.params,
        coin=coin,
        timeframe="1d",
        start=end - timedelta(days=30),
        end=end,
        data_start=end - timedelta(days=30),
        data_end=end,
        bars=31,
        initial_capital=10_000,
        fee_bps=10,
        slippage_bps=0,
        status=Backtest.Status.SUCCEEDED,
        progress=100,
        metrics={"total_return": 0.1, "buy_and_hold_return": 0.05, "final_equity": "11000", **metrics_},
    )


@pytest.mark.django_db
def test_results_page_shows_the_figures_against_buy_and_hold(client, alice, bitcoin):
    backtest = _finished(
        alice, bitcoin, {"alpha": 0.1234, "beta": -0.5, "tracking_error": 0.4, "information_ratio": 1.254}
    )
    log_in(client, alice)
    page = client.get(f"/backtests/{backtest.pk}/").content.decode()
    figures = {
        key: re.search(rf'data-metric="{key}">\s*<h3>[^<]+</h3>\s*<p class="metric-value[^"]*">([^<]+)</p>', page)
        for key in FIGURES
    }
    assert {key: match and match.group(1) for key, match in figures.items()} == {
        "alpha": "+12.34%",
        "beta": "\u22120.50",
        "tracking_error": "40.00%",
        "information_ratio": "1.25",
    }
    assert "Against buy &amp; hold" in page


@pytest.mark.django_db
def test_results_page_shows_a_dash_for_a_missing_figure(client, alice, bitcoin):
    backtest = _finished(alice, bitcoin, {"alpha": None, "beta": None, "tracking_error": 0, "information_ratio": None})
    log_in(client, alice)
    page = client.get(f"/backtests/{backtest.pk}/").content.decode()
    for key in ("alpha", "beta", "information_ratio"):
        assert re.search(rf'data-metric="{key}">\s*<h3>[^<]+</h3>\s*<p class="metric-value[^"]*">—</p>', page), key
