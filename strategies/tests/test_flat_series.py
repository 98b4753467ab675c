"""No kind invents a trade on a flat or near-flat series: float noise never makes a crossover."""

import numpy as np
import pytest

from strategies.engine import backtest, signals
from strategies.engine.kinds import KINDS, validate

DAY = 86_400_000
START = 1_700_000_000_000 // DAY * DAY
CROSSING_KINDS = ["sma_crossover", "ema_crossover", "rsi_reversion", "breakout"]
PARAMS = {
    "sma_crossover": [{"fast": 3, "slow": 5}, {"fast": 20, "slow": 50}, {"fast": 7, "slow": 31}],
    "ema_crossover": [{"fast": 3, "slow": 5}, {"fast": 12, "slow": 26}, {"fast": 20, "slow": 50}],
    "rsi_reversion": [{"period": 14}, {"period": 3, "lower": 49, "upper": 51}, {"period": 2, "lower": 50, "upper": 99}],
    "breakout": [{"lookback": 2}, {"lookback": 20}],
}


def run(kind: str, params: dict, close: np.ndarray) -> backtest.Simulation:
    times = START + np.arange(len(close), dtype=np.int64) * DAY
    return backtest.run(
        kind=kind, params=validate(kind, params), times=times, close=close, capital=10_000, fee_bps=10, slippage_bps=0
    )


def flat_prices() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    levels = [123.456, 0.1 + 0.2, 1e-6 * 3.3, 65_432.1, 7.0]
    return [np.full(300, level) for level in levels] + [np.full(300, rng.uniform(0.001, 100_000)) for _ in range(60)]


def test_seven_bars_at_one_price_make_no_trade():
    assert run("sma_crossover", {"fast": 3, "slow": 5}, np.full(7, 123.456)).trades == []


@pytest.mark.parametrize("kind", CROSSING_KINDS)
def test_constant_series_never_trade(kind):
    for params in PARAMS[kind]:
        for close in flat_prices():
            result = run(kind, params, close)
            assert result.trades == [], (params, close[0])
            assert result.equity[-1] == 10_000


@pytest.mark.parametrize("kind", CROSSING_KINDS)
def test_noise_below_the_tolerance_never_trades(kind):
    for params in PARAMS[kind]:
        for level in [123.456, 65_432.1, 0.0033]:
            wiggle = level * signals.RELATIVE_TOLERANCE / 4
            alternating = level + wiggle * np.where(np.arange(400) % 2, 1.0, -1.0)
            random = level + wiggle * np.random.default_rng(5).uniform(-1, 1, 400)
            for close in (alternating, random):
                assert run(kind, params, close).trades == [], (params, level)


def step(direction: float) -> np.ndarray:
    return np.concatenate([np.full(150, 123.456), np.full(250, 123.456 * direction)])


@pytest.mark.parametrize("kind", ["sma_crossover", "ema_crossover", "breakout"])
@pytest.mark.parametrize("direction", [1.05, 0.95])
def test_a_single_step_is_no_crossover(kind, direction):
    """Flat, one step, flat again: the averages leave equality to one side and settle back to equal, and the
    close leaves its flat range without ever having been inside it: no side was ever crossed."""
    for params in PARAMS[kind]:
        entries, exits = signals.events(kind, validate(kind, params), step(direction))
        assert not entries.any(), params
        assert not exits.any(), params
        assert run(kind, params, step(direction)).trades == []


def test_a_single_step_moves_the_rsi_once():
    """A real move: from neutral 50 the RSI jumps to 100 (up) or 0 (down) and stays there; it crosses a level
    once, on the step, and never again on the flat that follows."""
    for params in PARAMS["rsi_reversion"][:2]:
        up_entries, up_exits = signals.events("rsi_reversion", validate("rsi_reversion", params), step(1.05))
        assert (list(np.flatnonzero(up_entries)), list(np.flatnonzero(up_exits))) == ([], [150])
        down_entries, down_exits = signals.events("rsi_reversion", validate("rsi_reversion", params), step(0.95))
        assert (list(np.flatnonzero(down_entries)), list(np.flatnonzero(down_exits))) == ([150], [])
        trades = run("rsi_reversion", params, step(0.95)).trades
        assert [(trade.entry_index, trade.exit_index) for trade in trades] == [(150, 399)]


def test_dca_on_a_flat_series_only_makes_its_scheduled_buys():
    close = np.full(30, 123.456)
    result = run("dca", {"amount": 100, "every_days": 7}, close)
    assert [trade.entry_index for trade in result.trades] == [0, 7, 14, 21, 28]
    assert all(trade.exit_index == 29 for trade in result.trades)


def test_rsi_of_a_flat_series_is_neutral():
    assert (signals.rsi(np.full(40, 9.99), 14)[14:] == 50.0).all()


def test_equal_bars_between_below_and_above_are_one_cross():
    a = np.array([1.0, 2.0, 2.0, 3.0, 2.0, 2.0, 1.0])
    b = np.full(7, 2.0)
    assert list(np.flatnonzero(signals.crosses_above(a, b))) == [3]  # below, equal, above
    assert list(np.flatnonzero(signals.crosses_above(b, a))) == [6]  # above, equal, equal, below
    touch = np.array([1.0, 2.0, 1.0])
    assert not signals.crosses_above(touch, np.full(3, 2.0)).any()


def test_a_nan_forgets_the_side():
    a = np.array([1.0, np.nan, 3.0])
    assert not signals.crosses_above(a, np.full(3, 2.0)).any()


def test_every_kind_is_covered():
    assert set(PARAMS) | {"dca"} == set(KINDS)
