"""Optimisation bench: a 1,000-combination SMA grid over 43,800 hourly bars (a seeded random walk), the optimiser
against backtesting.py's Backtest.optimize and vectorbt on the same data, in one run; ratios printed."""

import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars, where tqdm is installed
if str(ROOT) not in sys.path:  # `python bench/optimize.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from backtesting.lib import FractionalBacktest  # noqa: E402

from bench.backtest import (  # noqa: E402
    CAPITAL,
    FEE,
    FRACTIONAL_UNIT,
    HOURLY_BARS,
    SEED,
    SmaCross,
    random_walk,
    reference_frame,
)
from strategies.engine import optimize  # noqa: E402

FAST = list(range(2, 42))  # 40 values
SLOW = list(range(50, 300, 10))  # 25 values: every fast is below every slow, so all 1,000 are run
COMBINATIONS = len(FAST) * len(SLOW)
OBJECTIVE = "total_return"  # backtesting.py's "Return [%]": the same figure, so the rows can be compared
OURS_RUNS = 3  # timed, after one untimed run
# backtesting.py needs about a second per combination here: a random sample of the grid is timed (its own
# `max_tries`) and the full grid's time is projected from it. BENCH_OPTIMIZE_FULL=1 runs all 1,000 instead.
THEIRS_SAMPLE = 24
TOLERANCE = 1e-6
TARGET_VS_BACKTESTING = 10.0
TARGET_VS_VECTORBT = 1.0


def elapsed(started: float) -> float:
    return time.perf_counter() - started


@dataclass(frozen=True)
class Ours:
    seconds: list[float]
    returns: dict[tuple[int, int], float]  # total return of each (fast, slow)
    trades: dict[tuple[int, int], int]
    best: tuple[int, int]

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)


def run_ours(times: np.ndarray, close: np.ndarray) -> Ours:
    """clean_grid + combinations + optimize, as the worker runs them (its database reads and writes aside)."""
    seconds, outcome, combos = [], None, []
    for run in range(OURS_RUNS + 1):
        started = time.perf_counter()
        grid = optimize.clean_grid("sma_crossover", {"fast": FAST, "slow": SLOW}, max_combinations=COMBINATIONS)
        combos, skipped = optimize.combinations("sma_crossover", {}, grid)
        outcome = optimize.optimize(
            kind="sma_crossover",
            combos=combos,
            times=times,
            close=close,
            capital=CAPITAL,
            fee_bps=FEE * 10_000,
            slippage_bps=0.0,
            objective=OBJECTIVE,
        )
        if run:  # the first one is untimed: first allocations, lazy imports
            seconds.append(elapsed(started))
        if skipped or len(combos) != COMBINATIONS:
            raise RuntimeError(f"the grid should run all {COMBINATIONS} combinations: {len(combos)}, {skipped} skipped")
    keys = [(combo["fast"], combo["slow"]) for combo in combos]
    return Ours(
        seconds=seconds,
        returns={key: row["total_return"] for key, row in zip(keys, outcome.figures, strict=True)},
        trades={key: row["trades"] for key, row in zip(keys, outcome.figures, strict=True)},
        best=keys[outcome.best],
    )


@dataclass(frozen=True)
class Theirs:
    seconds: float
    evaluated: int  # combinations run by optimize (a sample unless BENCH_OPTIMIZE_FULL), plus its final re-run
    returns: dict[tuple[int, int], float]
    best: tuple[int, int]

    @property
    def per_combination_s(self) -> float:
        return self.seconds / self.evaluated

    @property
    def projected_s(self) -> float:
        return self.per_combination_s * COMBINATIONS


def run_backtesting(times: np.ndarray, close: np.ndarray, *, full: bool) -> Theirs:
    """Backtest.optimize over the same grid, with the rules bench/backtest.py holds both engines to (all in,
    long only, on the close, the fee on both sides, the last bar repeated so its forced close is the real one)."""
    frame = reference_frame(times, close)  # built once and not timed
    test = FractionalBacktest(
        frame,
        SmaCross,
        cash=CAPITAL,
        commission=FEE,
        trade_on_close=True,
        finalize_trades=True,
        fractional_unit=FRACTIONAL_UNIT,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its progress bar and "Searching for best of …"
        _, heatmap = test.optimize(
            fast=FAST,
            slow=SLOW,
            bars=[len(close)],
            maximize="Return [%]",
            max_tries=None if full else THEIRS_SAMPLE,
            random_state=SEED,
            return_heatmap=True,
        )
    seconds = elapsed(started)
    ran = heatmap.dropna()
    returns = {(int(fast), int(slow)): float(value) / 100 for (fast, slow, _), value in ran.items()}
    best = max(returns, key=returns.get)
    return Theirs(seconds=seconds, evaluated=len(ran) + 1, returns=returns, best=best)  # + its re-run of the best


@dataclass(frozen=True)
class Vectorbt:
    version: str
    compile_s: float
    seconds: float
    best: tuple[int, int]
    best_return: float


def run_vectorbt(times: np.ndarray, close: np.ndarray) -> Vectorbt | str:
    """Its documented pattern: MA.run for every combination's windows, crossovers, Portfolio.from_signals (all in,
    fees on both sides). A first run compiles its Numba kernels and is timed apart."""
    try:
        import pandas as pd
        import vectorbt as vbt
    except Exception as exc:  # not installed, or a dependency it cannot load
        return f"{exc.__class__.__name__}: {exc}".splitlines()[0][:300]
    price = pd.Series(close, index=pd.to_datetime(times, unit="ms"))
    fast = [f for f in FAST for _ in SLOW]
    slow = [s for _ in FAST for s in SLOW]

    def once() -> "pd.Series":
        fast_ma = vbt.MA.run(price, window=fast, short_name="fast")
        slow_ma = vbt.MA.run(price, window=slow, short_name="slow")
        entries, exits = fast_ma.ma_crossed_above(slow_ma), fast_ma.ma_crossed_below(slow_ma)
        portfolio = vbt.Portfolio.from_signals(price, entries, exits, fees=FEE, init_cash=CAPITAL, freq="1h")
        return portfolio.total_return()

    started = time.perf_counter()
    once()
    compile_s = elapsed(started)
    started = time.perf_counter()
    returns = once()
    seconds = elapsed(started)
    best = returns.idxmax()
    return Vectorbt(vbt.__version__, compile_s, seconds, (int(best[0]), int(best[1])), float(returns.max()))


def main() -> int:
    full = os.environ.get("BENCH_OPTIMIZE_FULL") == "1"
    times, close = random_walk()
    print(
        f"== sma_crossover grid: fast {FAST[0]}..{FAST[-1]} x slow {SLOW[0]}..{SLOW[-1]} step 10 = {COMBINATIONS:,} "
        f"combinations, {HOURLY_BARS:,} hourly bars (seed {SEED}), fee {FEE:g} per side, capital {CAPITAL:,.0f} ==",
        flush=True,
    )
    ours = run_ours(times, close)
    print(
        f"ours: median of {OURS_RUNS} runs {ours.median_s:.2f}s ({1000 * ours.median_s / COMBINATIONS:.2f} ms a "
        f"combination; runs {', '.join(f'{s:.2f}' for s in ours.seconds)}s); best {ours.best} by total return "
        f"{ours.returns[ours.best]:.6f}",
        flush=True,
    )

    theirs = run_backtesting(times, close, full=full)
    sampled = "all" if full else f"a random sample of {theirs.evaluated - 1} (max_tries={THEIRS_SAMPLE})"
    differences = [abs(ours.returns[key] - value) for key, value in theirs.returns.items()]
    matched = sum(difference <= TOLERANCE for difference in differences)
    print(
        f"backtesting.py Backtest.optimize on {sampled} of the combinations (2 processes): {theirs.seconds:.1f}s, "
        f"{theirs.per_combination_s:.2f}s a combination -> {theirs.projected_s:.0f}s for {COMBINATIONS:,}"
        f"{' (measured)' if full else ' (projected)'}",
        flush=True,
    )
    print(
        f"  the same combinations: total return equal within {TOLERANCE:g} on {matched}/{len(differences)} "
        f"(largest difference {max(differences):.1e})"
    )
    vs_backtesting = theirs.projected_s / ours.median_s
    print(f"speed-up over backtesting.py: {vs_backtesting:.0f}x (target >= {TARGET_VS_BACKTESTING:.0f}x)")

    vectorbt = run_vectorbt(times, close)
    vs_vectorbt = None
    if isinstance(vectorbt, str):
        print(
            f"vectorbt: not measured, it cannot be imported here ({vectorbt}). vectorbt 1.1+ needs numpy >= 2.4.6 "
            "(this project pins 2.3.5); vectorbt==1.0.0 with plotly<6 imports: run this script with an "
            "interpreter that has them to measure it."
        )
    else:
        vs_vectorbt = vectorbt.seconds / ours.median_s
        print(
            f"vectorbt {vectorbt.version} (MA.run + Portfolio.from_signals, 1,000 columns): {vectorbt.seconds:.2f}s "
            f"warm ({vectorbt.compile_s:.1f}s the first time, compiling); best {vectorbt.best} by total return "
            f"{vectorbt.best_return:.6f} (its conventions: an open position is valued, not sold, at the end)"
        )
        print(f"speed vs vectorbt: {vs_vectorbt:.2f}x (target >= {TARGET_VS_VECTORBT:.0f}x)")

    passed = matched == len(differences) and vs_backtesting >= TARGET_VS_BACKTESTING
    passed = passed and (vs_vectorbt is None or vs_vectorbt >= TARGET_VS_VECTORBT)
    vectorbt_text = "not measured" if vs_vectorbt is None else f"{vs_vectorbt:.2f}x vectorbt"
    print(
        f"optimize bench: {COMBINATIONS:,} combinations in {ours.median_s:.2f}s; {vs_backtesting:.0f}x backtesting.py "
        f"(target >= {TARGET_VS_BACKTESTING:.0f}x), {vectorbt_text} (target >= {TARGET_VS_VECTORBT:.0f}x); rows "
        f"equal to backtesting.py's on {matched}/{len(differences)} -> {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
