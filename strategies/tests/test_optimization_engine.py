"""The optimiser's engine: the grid checked against the kind, every row equal to the engine's own backtest of its
parameters, walk-forward windows that trade what their train bars chose, and the deflated Sharpe ratio against
the formula worked out here with an independent normal distribution."""

import itertools
import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.engine import backtest as engine
from strategies.engine import metrics, optimize, signals
from strategies.engine.kinds import KINDS, ParamError, validate

DAY = 86_400_000
HOUR = 3_600_000
START = 1_700_000_000_000 // DAY * DAY
COSTS = {"capital": 10_000.0, "fee_bps": 10.0, "slippage_bps": 5.0}


def random_walk(seed: int, bars: int, *, step_ms: int = DAY) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.035, bars)))
    return START + np.arange(bars, dtype=np.int64) * step_ms, close


def backtest_figures(kind, params, times, close, *, trade_from=0, capital=COSTS["capital"]) -> dict:
    """What a single backtest computes: engine.run, then metrics.compute."""
    simulation = engine.run(
        kind=kind,
        params=params,
        times=times,
        close=close,
        capital=capital,
        fee_bps=COSTS["fee_bps"],
        slippage_bps=COSTS["slippage_bps"],
        trade_from=trade_from,
    )
    return metrics.compute(simulation, capital=capital)


def two_values(param) -> list:
    """Two values of a declared parameter, whatever it is: its default and a neighbour (for an optional one,
    off and a value inside its bounds)."""
    if param.default is None:
        return [None, str(min(param.maximum, param.minimum * 500))]
    step = 1 if param.kind is int else Decimal(5)
    other = param.default + step if param.default + step <= param.maximum else param.default - step
    return [param.default, other if param.kind is int else str(other)]


# --- the grid -------------------------------------------------------------------------------------------


def test_grid_takes_every_declared_parameter_in_declared_order():
    for kind in KINDS.values():
        names = [param.name for param in kind.params]
        raw = {param.name: two_values(param) for param in reversed(kind.params)}
        grid = optimize.clean_grid(kind.name, raw, max_combinations=10_000)
        assert grid.names == tuple(names)
        assert grid.size == 2 ** len(names)


def test_grid_values_are_cleaned_by_the_declaration_and_deduplicated():
    grid = optimize.clean_grid("rsi_reversion", {"lower": ["20", 20, Decimal("20.0"), 25]}, max_combinations=10)
    assert grid.values == ((Decimal(20), Decimal(25)),)
    assert optimize.clean_grid("sma_crossover", {"fast": ["5", 6]}, max_combinations=10).values == ((5, 6),)


@pytest.mark.parametrize(
    ("grid", "field", "message"),
    [
        ({"speed": [1]}, "speed", "speed is not a parameter of sma_crossover."),
        ({"fast": 5}, "fast", "fast needs a list of values."),
        ({"fast": {"a": 1}}, "fast", "fast needs a list of values."),
        ({"fast": []}, "fast", "fast needs at least one value."),
        ({"fast": [5, 1]}, "fast", "fast must be between 2 and 500."),
        ({"fast": [5, 501]}, "fast", "fast must be between 2 and 500."),
        ({"fast": [Decimal("1e2000000")]}, "fast", "fast must be between 2 and 500."),
        ({"fast": ["1e2000000"]}, "fast", "fast must be a whole number written with the digits 0-9."),
        ({"fast": [10**5000]}, "fast", "fast must be between 2 and 500."),
        ({"fast": [5.5]}, "fast", "fast must be a number."),
        ({"fast": [True]}, "fast", "fast must be a number."),
        ({"fast": [Decimal("5.5")]}, "fast", "fast must be a whole number."),
        ({"fast": list(range(2, 43)), "slow": list(range(3, 53))}, "grid", "2,050 combinations are more than the "),
        ({"fast": list(range(2, 2100))}, "fast", "fast has 2,098 values: at most 2,000 are allowed."),
        ({}, "grid", "Give at least one parameter of sma_crossover with a list of values."),
        ([5], "grid", "Give at least one parameter of sma_crossover with a list of values."),
    ],
)
def test_bad_grids_name_the_parameter(grid, field, message):
    with pytest.raises(ParamError) as refused:
        optimize.clean_grid("sma_crossover", grid, max_combinations=2000)
    assert refused.value.field == field
    assert refused.value.message.startswith(message)


def test_a_huge_exponent_is_refused_fast():
    """Bounded before conversion: building 10^2000000 would take seconds and megabytes."""
    import time

    started = time.perf_counter()
    with pytest.raises(ParamError):
        optimize.clean_grid(
            "sma_crossover", {"fast": [Decimal("1e2000000"), Decimal("-1e-2000000")]}, max_combinations=9
        )
    assert time.perf_counter() - started < 0.05


def test_combinations_the_kind_refuses_are_skipped_and_counted():
    grid = optimize.clean_grid("sma_crossover", {"fast": [5, 10, 20], "slow": [10, 30]}, max_combinations=100)
    combos, skipped = optimize.combinations("sma_crossover", {"fast": 20, "slow": 50}, grid)
    assert skipped == 2  # (10, 10) and (20, 10)
    assert [(c["fast"], c["slow"]) for c in combos] == [(5, 10), (5, 30), (10, 30), (20, 30)]


def test_a_null_value_turns_an_optional_parameter_off():
    name = "stop_loss_pct"
    grid = optimize.clean_grid("sma_crossover", {name: [None, "0.05"]}, max_combinations=10)
    combos, skipped = optimize.combinations("sma_crossover", {}, grid)
    assert skipped == 0
    assert [combo.get(name) for combo in combos] == [None, Decimal("0.05")]


# --- events and rows equal the engine's ---------------------------------------------------------------

sides = st.lists(st.sampled_from([1.0, 2.0, 2.0 + 1e-12, 3.0, math.nan]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(sides, st.data())
def test_crossings_are_both_crosses_above(a, data):
    b = data.draw(st.lists(st.sampled_from([1.0, 2.0, 3.0, math.nan]), min_size=len(a), max_size=len(a)))
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    above, below = optimize.crossings(a, b)
    assert np.array_equal(above, signals.crosses_above(a, b))
    assert np.array_equal(below, signals.crosses_above(b, a))


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("sma_crossover", {"fast": 5, "slow": 20}),
        ("ema_crossover", {"fast": 4, "slow": 30}),
        ("rsi_reversion", {"period": 9, "lower": Decimal(35), "upper": Decimal(60)}),
        ("breakout", {"lookback": 12}),
    ],
)
def test_events_from_cached_indicators_equal_the_engines(kind, params):
    times, close = random_walk(3, 700)
    bars = optimize.Bars(times, close)
    for _ in range(2):  # the second time from the cache
        entries, exits = optimize.events(kind, params, bars)
        expected_entries, expected_exits = signals.events(kind, params, close)
        assert np.array_equal(entries, expected_entries)
        assert np.array_equal(exits, expected_exits)
        assert entries.any()
        assert exits.any()


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_row_equals_the_backtest_of_its_parameters(kind):
    """Over every declared parameter of every kind (protective exits included, whatever the kind declares):
    the row's metrics are exactly engine.run + metrics.compute of the same parameters."""
    times, close = random_walk(11, 420)
    declared = KINDS[kind].params
    raw = {param.name: two_values(param) for param in declared[:4]}
    combos, _ = optimize.combinations(kind, {}, optimize.clean_grid(kind, raw, max_combinations=2000))
    outcome = optimize.optimize(kind=kind, combos=combos, times=times, close=close, objective="sharpe", **COSTS)
    assert len(outcome.figures) == len(combos) >= 2
    for params, figures in zip(combos, outcome.figures, strict=True):
        assert figures == backtest_figures(kind, validate(kind, params), times, close), params
    assert any(figures["trades"] for figures in outcome.figures)


def test_a_large_sma_grid_equals_single_backtests_row_by_row():
    times, close = random_walk(5, 900, step_ms=HOUR)
    grid = optimize.clean_grid(
        "sma_crossover", {"fast": list(range(2, 40, 3)), "slow": list(range(5, 120, 9))}, max_combinations=2000
    )
    combos, skipped = optimize.combinations("sma_crossover", {}, grid)
    assert skipped > 0
    outcome = optimize.optimize(
        kind="sma_crossover", combos=combos, times=times, close=close, objective="total_return", **COSTS
    )
    for params, figures in zip(combos, outcome.figures, strict=True):
        assert figures == backtest_figures("sma_crossover", params, times, close)
    best = max(range(len(combos)), key=lambda i: (outcome.figures[i]["total_return"], -i))
    assert outcome.best == best


@pytest.mark.parametrize("objective", optimize.OBJECTIVES)
def test_the_best_row_by_each_objective(objective):
    columns = ("sharpe", "total_return", "cagr", "sortino", "max_drawdown", "profit_factor", "win_rate")
    figures = [
        dict(zip(columns, (1.0, 0.2, None, 2.0, 0.3, 2.0, 0.5), strict=True)),
        dict(zip(columns, (2.0, 0.1, None, 1.0, 0.1, None, 0.5), strict=True)),
        dict(zip(columns, (None, 0.3, 0.1, None, 0.2, 1.0, 0.4), strict=True)),
    ]
    expected = {
        "sharpe": 1,
        "total_return": 2,
        "cagr": 2,
        "sortino": 0,
        "max_drawdown": 1,  # minimised
        "profit_factor": 0,
        "win_rate": 0,  # the first on a tie
    }
    assert optimize.best_index(figures, objective) == expected[objective]
    assert optimize.best_index([{objective: None}], objective) is None


def test_progress_is_reported_at_most_every_two_percent():
    times, close = random_walk(2, 300)
    grid = optimize.clean_grid("breakout", {"lookback": list(range(2, 302))}, max_combinations=2000)
    combos, _ = optimize.combinations("breakout", {}, grid)
    seen: list[int] = []
    optimize.optimize(
        kind="breakout",
        combos=combos,
        times=times,
        close=close,
        objective="sharpe",
        walk_forward=(120, 60),
        progress=seen.append,
        **COSTS,
    )
    assert len(combos) * 4 > 1000  # far more units of work than reports
    assert seen == sorted(set(seen))
    assert all(later - earlier >= 2 for earlier, later in itertools.pairwise(seen))
    assert seen[-1] == 100
    assert len(seen) <= 50


# --- walk-forward ------------------------------------------------------------------------------------


def test_walk_forward_windows_roll_by_the_test_length():
    assert optimize.walk_forward_windows(100, 40, 20) == [(0, 40, 60), (20, 60, 80), (40, 80, 100)]
    assert optimize.walk_forward_windows(99, 40, 20) == [(0, 40, 60), (20, 60, 80)]
    assert optimize.walk_forward_windows(59, 40, 20) == []


def test_walk_forward_trades_the_train_windows_best_on_the_next_bars():
    times, close = random_walk(8, 400)
    grid = optimize.clean_grid("sma_crossover", {"fast": [3, 5, 8], "slow": [10, 20, 30]}, max_combinations=100)
    combos, _ = optimize.combinations("sma_crossover", {}, grid)
    outcome = optimize.optimize(
        kind="sma_crossover",
        combos=combos,
        times=times,
        close=close,
        objective="total_return",
        walk_forward=(150, 50),
        **COSTS,
    )
    assert [(w.train, w.test) for w in outcome.windows] == [
        ((0, 150), (150, 200)),
        ((50, 200), (200, 250)),
        ((100, 250), (250, 300)),
        ((150, 300), (300, 350)),
        ((200, 350), (350, 400)),
    ]
    equity = COSTS["capital"]
    for window in outcome.windows:
        start, split = window.train
        stop = window.test[1]
        in_sample = [backtest_figures("sma_crossover", c, times[start:split], close[start:split]) for c in combos]
        chosen = max(range(len(combos)), key=lambda i: (in_sample[i]["total_return"], -i))
        assert window.best == chosen
        assert window.in_sample == in_sample[chosen]
        # the test bars trade with the indicators warmed on the train bars, from the equity left by the last window
        stretch = (times[start:stop], close[start:stop])
        expected = backtest_figures("sma_crossover", combos[chosen], *stretch, trade_from=split - start, capital=equity)
        assert window.out_of_sample == expected
        assert window.simulation.equity[0] == pytest.approx(equity, rel=0.01)
        equity = float(window.simulation.equity[-1])
    stitched = outcome.stitched
    assert np.array_equal(stitched.times, times[150:400])
    assert stitched.equity[-1] == equity
    assert outcome.out_of_sample["final_equity"] == equity
    assert outcome.out_of_sample["total_return"] == equity / COSTS["capital"] - 1
    assert outcome.out_of_sample["trades"] == sum(len(w.simulation.trades) for w in outcome.windows)
    assert outcome.out_of_sample == metrics.compute(stitched, capital=COSTS["capital"])


def test_walk_forward_needs_room_for_one_window():
    times, close = random_walk(8, 100)
    with pytest.raises(ValueError, match="walk-forward needs at least 120"):
        optimize.optimize(
            kind="breakout",
            combos=[{"lookback": 5}],
            times=times,
            close=close,
            objective="sharpe",
            walk_forward=(100, 20),
            **COSTS,
        )


# --- the deflated Sharpe ratio ------------------------------------------------------------------------


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _phi_inverse(p: float) -> float:
    """By bisection on erf: independent of statistics.NormalDist."""
    low, high = -40.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if _phi(middle) < p else (low, middle)
    return (low + high) / 2


def test_deflated_sharpe_of_the_papers_example():
    """Bailey and López de Prado (2014), section 4: 100 trials, the best an annualised SR of 2.5 over five years
    of daily returns (T = 1,250, 250 a year), V[SR] = 1/2 annualised, skewness −3, kurtosis 10: DSR ≈ 0.90."""
    sharpe, variance, trials, observations = 2.5 / math.sqrt(250), 0.5 / 250, 100, 1250
    skewness, kurtosis = -3.0, 10.0
    gamma = 0.5772156649015329
    expected_max = math.sqrt(variance) * (
        (1 - gamma) * _phi_inverse(1 - 1 / trials) + gamma * _phi_inverse(1 - 1 / (trials * math.e))
    )
    assert expected_max == pytest.approx(0.1132, abs=5e-5)  # the paper's E[max SR], per day
    z = (sharpe - expected_max) * math.sqrt(observations - 1)
    z /= math.sqrt(1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2)
    by_hand = _phi(z)
    dsr = optimize.deflated_sharpe(
        sharpe=sharpe,
        trials=trials,
        sharpe_variance=variance,
        observations=observations,
        skewness=skewness,
        kurtosis=kurtosis,
    )
    assert dsr == pytest.approx(by_hand, abs=1e-9)
    assert round(dsr, 2) == 0.90
    assert optimize.expected_maximum_sharpe(trials, variance) == pytest.approx(expected_max, abs=1e-9)


def test_one_trial_is_not_deflated():
    psr = optimize.probabilistic_sharpe(0.1, 0.0, observations=500, skewness=0.0, kurtosis=3.0)
    assert psr == pytest.approx(_phi(0.1 * math.sqrt(499) / math.sqrt(1 + 0.5 * 0.01)), abs=1e-12)
    one = optimize.deflated_sharpe(
        sharpe=0.1, trials=1, sharpe_variance=0.01, observations=500, skewness=0.0, kurtosis=3.0
    )
    assert one == psr


@settings(max_examples=200, deadline=None)
@given(
    sharpe=st.floats(-0.5, 0.5),
    variance=st.floats(1e-6, 0.05),
    trials=st.integers(2, 5000),
    more=st.integers(1, 5000),
    observations=st.integers(10, 5000),
    skewness=st.floats(-2, 2),
    kurtosis=st.floats(1.5, 12),
)
def test_more_trials_deflate_more_and_the_ratio_is_a_probability(
    sharpe, variance, trials, more, observations, skewness, kurtosis
):
    inputs = {"sharpe": sharpe, "sharpe_variance": variance, "observations": observations}
    shape = {"skewness": skewness, "kurtosis": kurtosis}
    fewer = optimize.deflated_sharpe(trials=trials, **inputs, **shape)
    many = optimize.deflated_sharpe(trials=trials + more, **inputs, **shape)
    if fewer is None:  # the spread 1 − γ₃ SR + (γ₄ − 1)/4 SR² is not positive: undefined, whatever the trials
        assert many is None
        return
    assert 0.0 <= many <= fewer <= 1.0
    assert optimize.expected_maximum_sharpe(trials + more, variance) > optimize.expected_maximum_sharpe(
        trials, variance
    )


def test_the_optimisations_deflated_sharpe_reads_the_best_and_the_trials():
    times, close = random_walk(21, 800)
    grid = optimize.clean_grid("sma_crossover", {"fast": [3, 5, 8, 13], "slow": [21, 34, 55]}, max_combinations=100)
    combos, _ = optimize.combinations("sma_crossover", {}, grid)
    outcome = optimize.optimize(
        kind="sma_crossover", combos=combos, times=times, close=close, objective="sharpe", **COSTS
    )
    deflation = outcome.deflated_sharpe
    best = engine.run(kind="sma_crossover", params=combos[outcome.best], times=times, close=close, **COSTS)
    returns = optimize.daily_returns(best)
    sharpes = np.array([row["sharpe"] for row in outcome.figures]) / math.sqrt(365)
    mean, spread = returns.mean(), returns.std()
    assert deflation["trials"] == len(combos) == 12
    assert deflation["observations"] == len(returns) == 799
    assert deflation["sharpe"] == pytest.approx(outcome.figures[outcome.best]["sharpe"], rel=1e-12)
    assert deflation["sharpe_variance"] == pytest.approx(sharpes.var(ddof=1) * 365, rel=1e-12)
    assert deflation["skewness"] == pytest.approx(np.mean((returns - mean) ** 3) / spread**3, rel=1e-12)
    assert deflation["kurtosis"] == pytest.approx(np.mean((returns - mean) ** 4) / spread**4, rel=1e-12)
    assert deflation["value"] == pytest.approx(
        optimize.deflated_sharpe(
            sharpe=deflation["sharpe"] / math.sqrt(365),
            trials=12,
            sharpe_variance=deflation["sharpe_variance"] / 365,
            observations=799,
            skewness=deflation["skewness"],
            kurtosis=deflation["kurtosis"],
        ),
        abs=1e-12,
    )
    assert deflation["value"] < deflation["probabilistic_sharpe"]  # selection among 12 costs confidence
