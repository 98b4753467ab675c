"""The engine against backtesting.py on the same series, and its metrics against formulas written here."""

import math

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover

from strategies.engine import backtest, metrics, signals
from strategies.engine.kinds import KINDS, ParamError, validate

DAY = 86_400_000
START = 1_700_000_000_000 // DAY * DAY


def random_walk(seed: int, bars: int = 1500, *, step_ms: int = DAY) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.035, bars)))
    times = START + np.arange(bars, dtype=np.int64) * step_ms
    return times, close


def _masked_ema(values, window, slow):
    out = pd.Series(values).ewm(span=window, adjust=False).mean().to_numpy()
    out[: slow - 1] = np.nan  # as the engine: meaningful once the slow average has `slow` bars
    return out


def reference(close: np.ndarray, kind: str, fast: int, slow: int, fee: float) -> tuple[float, int]:
    """backtesting.py, trading on the close, commission on both sides, all-in, long only, closed at the end."""
    bars = len(close)
    # backtesting.py closes what is left open at the close *before* the last bar: one repeated bar at the end
    # makes that the real last close, the convention both engines are held to
    padded = np.append(close, close[-1])
    frame = pd.DataFrame(
        {"Open": padded, "High": padded, "Low": padded, "Close": padded, "Volume": np.ones(len(padded))},
        index=pd.date_range("2023-11-14", periods=len(padded), freq="D"),
    )

    def average(values, window):
        if kind == "sma_crossover":
            return pd.Series(values).rolling(window).mean().to_numpy()
        return _masked_ema(values, window, slow)

    class Cross(Strategy):
        def init(self):
            self.fast = self.I(average, self.data.Close, fast)
            self.slow = self.I(average, self.data.Close, slow)

        def next(self):
            if crossover(self.fast, self.slow) and not self.position and len(self.data) < bars:
                self.buy()
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    test = FractionalBacktest(
        frame, Cross, cash=10_000, commission=fee, trade_on_close=True, finalize_trades=True, fractional_unit=1e-9
    )
    stats = test.run()
    return stats["Return [%]"] / 100, int(stats["# Trades"])


@pytest.mark.parametrize("kind", ["sma_crossover", "ema_crossover"])
@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
def test_matches_backtesting_py(kind, seed):
    times, close = random_walk(seed)
    fast, slow = 10, 30
    result = backtest.run(
        kind=kind,
        params={"fast": fast, "slow": slow},
        times=times,
        close=close,
        capital=10_000,
        fee_bps=10,
        slippage_bps=0,
    )
    expected_return, expected_trades = reference(close, kind, fast, slow, fee=0.001)
    ours = metrics.compute(result, capital=10_000)
    assert ours["trades"] == expected_trades
    assert expected_trades >= 5  # the series really trades
    assert abs(ours["total_return"] - expected_return) <= 1e-6


def test_sma_and_ema_match_pandas():
    _, close = random_walk(3, 300)
    assert np.allclose(signals.sma(close, 20)[19:], pd.Series(close).rolling(20).mean().to_numpy()[19:], rtol=1e-12)
    assert np.isnan(signals.sma(close, 20)[:19]).all()
    assert np.allclose(
        signals.ema(close, 12), pd.Series(close).ewm(span=12, adjust=False).mean().to_numpy(), rtol=1e-12
    )


def test_rsi_matches_wilders_definition():
    _, close = random_walk(5, 200)
    period = 14
    ours = signals.rsi(close, period)
    change = np.diff(close)
    gain, loss = np.clip(change, 0, None), np.clip(-change, 0, None)
    average_gain, average_loss = gain[:period].mean(), loss[:period].mean()
    expected = [100 - 100 / (1 + average_gain / average_loss)]
    for i in range(period, len(change)):
        average_gain = (average_gain * (period - 1) + gain[i]) / period
        average_loss = (average_loss * (period - 1) + loss[i]) / period
        expected.append(100 - 100 / (1 + average_gain / average_loss))
    assert np.allclose(ours[period:], expected, rtol=1e-12)
    assert np.isnan(ours[:period]).all()


def test_fills_fees_and_slippage_by_hand():
    close = np.array([10.0, 8.0, 12.0, 15.0, 9.0, 20.0])
    entries = np.array([False, True, False, False, False, False])
    exits = np.array([False, False, False, True, False, False])
    equity, in_position, trades, fees = backtest._all_in(close, entries, exits, capital=1000, fee=0.01, slippage=0.02)
    buy = 8 * 1.02
    quantity = 1000 / (buy * 1.01)
    sell = 15 * 0.98
    assert trades[0].quantity == pytest.approx(quantity, rel=1e-15)
    assert trades[0].proceeds == pytest.approx(quantity * sell * 0.99, rel=1e-15)
    assert equity[2] == pytest.approx(quantity * 12, rel=1e-15)  # marked at the close while held
    assert equity[5] == pytest.approx(quantity * sell * 0.99, rel=1e-15)  # flat afterwards
    assert list(in_position) == [False, True, True, False, False, False]
    assert fees == pytest.approx(quantity * buy * 0.01 + quantity * sell * 0.01, rel=1e-12)


def test_an_open_position_is_closed_at_the_last_close():
    close = np.array([10.0, 11.0, 12.0, 13.0])
    entries = np.array([False, True, False, False])
    equity, in_position, trades, _ = backtest._all_in(
        close, entries, ~entries & False, capital=110, fee=0.0, slippage=0.0
    )
    assert len(trades) == 1
    assert trades[0].exit_index == 3
    assert equity[-1] == pytest.approx(130)
    # held after the closes of bars 1 and 2; the last bar is the exit bar, not counted, as for any exit
    assert list(in_position) == [False, True, True, False]


def test_dca_buys_on_schedule_and_holds():
    times = START + np.arange(30, dtype=np.int64) * DAY
    close = np.full(30, 50.0)
    close[-1] = 100.0
    result = backtest.run(
        kind="dca",
        params={"amount": 100, "every_days": 7},
        times=times,
        close=close,
        capital=1000,
        fee_bps=0,
        slippage_bps=0,
    )
    assert len(result.trades) == 5  # days 0, 7, 14, 21, 28
    assert result.equity[-1] == pytest.approx(1000 - 500 + 5 * 2 * 100)
    assert [t.entry_index for t in result.trades] == [0, 7, 14, 21, 28]


def test_metrics_match_independent_formulas():
    times, close = random_walk(11, 400)
    result = backtest.run(
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        times=times,
        close=close,
        capital=10_000,
        fee_bps=10,
        slippage_bps=5,
    )
    m = metrics.compute(result, capital=10_000)
    equity = result.equity
    daily_returns = equity[1:] / equity[:-1] - 1  # daily bars: one point a day
    assert m["total_return"] == pytest.approx(equity[-1] / 10_000 - 1, rel=1e-12)
    years = (times[-1] - times[0]) / DAY / 365
    assert m["cagr"] == pytest.approx((equity[-1] / 10_000) ** (1 / years) - 1, rel=1e-12)
    assert m["sharpe"] == pytest.approx(daily_returns.mean() / daily_returns.std(ddof=1) * math.sqrt(365), rel=1e-9)
    downside = math.sqrt(np.mean(np.minimum(daily_returns, 0) ** 2))
    assert m["sortino"] == pytest.approx(daily_returns.mean() / downside * math.sqrt(365), rel=1e-9)
    peak = -np.inf
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    assert m["max_drawdown"] == pytest.approx(worst, rel=1e-12)
    pnls = [t.proceeds - t.cost for t in result.trades]
    assert m["win_rate"] == pytest.approx(sum(p > 0 for p in pnls) / len(pnls))
    assert m["profit_factor"] == pytest.approx(sum(p for p in pnls if p > 0) / -sum(p for p in pnls if p < 0))
    assert m["buy_and_hold_return"] == pytest.approx(close[-1] / close[0] - 1)
    assert 0 < m["exposure"] < 1


def test_same_inputs_same_result():
    times, close = random_walk(9, 500)
    first = backtest.run(
        kind="rsi_reversion",
        params=validate("rsi_reversion", {}),
        times=times,
        close=close,
        capital=1000,
        fee_bps=10,
        slippage_bps=0,
    )
    second = backtest.run(
        kind="rsi_reversion",
        params=validate("rsi_reversion", {}),
        times=times,
        close=close,
        capital=1000,
        fee_bps=10,
        slippage_bps=0,
    )
    assert np.array_equal(first.equity, second.equity)
    assert first.trades == second.trades


def test_breakout_trades():
    times, close = random_walk(21, 600)
    result = backtest.run(
        kind="breakout", params={"lookback": 20}, times=times, close=close, capital=1000, fee_bps=10, slippage_bps=0
    )
    assert len(result.trades) > 3
    for trade in result.trades[:-1]:
        assert close[trade.entry_index] > close[trade.entry_index - 20 : trade.entry_index].max()


def test_bars_take_the_last_point_of_each_period():
    times = np.array([0, 1_000, 3_599_999, 3_600_000, 7_300_000], dtype=np.int64)
    prices = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    bar_times, closes = backtest.bars(times, prices, "1h")
    assert list(bar_times) == [0, 3_600_000, 7_200_000]
    assert list(closes) == [3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("sma_crossover", {"fast": 50, "slow": 20}, "fast"),
        ("sma_crossover", {"fast": 1, "slow": 20}, "fast"),
        ("ema_crossover", {"fast": "x"}, "fast"),
        ("rsi_reversion", {"lower": 80, "upper": 70}, "lower"),
        ("rsi_reversion", {"period": 14, "speed": 3}, "speed"),
        ("breakout", {"lookback": 1000}, "lookback"),
        ("dca", {"amount": "-5"}, "amount"),
        ("dca", {"every_days": 2.5}, "every_days"),
        ("martingale", {}, "kind"),
    ],
)
def test_bad_params_name_the_field(kind, params, field):
    with pytest.raises(ParamError) as caught:
        validate(kind, params)
    assert caught.value.field == field


def test_every_kind_validates_its_defaults():
    for name, kind in KINDS.items():
        assert validate(name, {}) == kind.defaults()


def test_drawdown_duration_is_the_longest_time_under_a_peak():
    times, close = random_walk(13, 300)
    result = backtest.run(
        kind="sma_crossover",
        params={"fast": 5, "slow": 20},
        times=times,
        close=close,
        capital=1000,
        fee_bps=10,
        slippage_bps=0,
    )
    longest, start, peak = 0, None, -np.inf
    for i, value in enumerate(result.equity):  # the plain loop the vectorised version must agree with
        if value >= peak:
            peak = value
            if start is not None:
                longest = max(longest, times[i] - times[start])
                start = None
        elif start is None:
            start = i - 1
    if start is not None:
        longest = max(longest, times[-1] - times[start])
    assert longest > 0
    assert metrics.max_drawdown_duration_days(result) == longest / DAY
