"""Grid optimisation and walk-forward over one series of bars, on the engine's own simulation: each combination
is simulated as its single backtest is. Indicators are computed once per window length and shared by every
combination that reads them."""

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from . import backtest as engine
from . import metrics, signals
from .kinds import KINDS, ParamError, validate

OBJECTIVES = ("sharpe", "total_return", "cagr", "sortino", "max_drawdown", "profit_factor", "win_rate")
MINIMISED = frozenset({"max_drawdown"})  # every other objective is maximised
EULER_GAMMA = 0.5772156649015329
PROGRESS_STEP = 2  # percent: progress is reported at most this often
# The parameters each kind's entry and exit events read. A combination that sets any other parameter (a stop,
# say) to a value is simulated by engine.run itself, exactly as its backtest is.
EVENT_PARAMS = {
    "sma_crossover": frozenset({"fast", "slow"}),
    "ema_crossover": frozenset({"fast", "slow"}),
    "rsi_reversion": frozenset({"period", "lower", "upper"}),
    "breakout": frozenset({"lookback"}),
}
_NORMAL = NormalDist()


# --- the grid ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """The values tried for each varied parameter, in the kind's declared order, each cleaned by its declaration."""

    names: tuple[str, ...]
    values: tuple[tuple, ...]

    @property
    def size(self) -> int:
        return math.prod(len(values) for values in self.values)


def clean_grid(kind: str, grid: object, *, max_combinations: int) -> Grid:
    """Only the kind's declared parameters; every list bounded in size before any value is converted, then each
    value cleaned by the parameter's own declaration (bounds first: a huge exponent is refused on its size).
    Duplicates (10 and "10.0") count once; null turns an optional parameter (a protective exit) off. Raises
    ParamError naming the parameter, or "grid" for the whole."""
    if kind not in KINDS:
        raise ParamError("kind", f"Unknown kind; use one of {', '.join(KINDS)}.")
    declared = {param.name: param for param in KINDS[kind].params}
    if not isinstance(grid, dict) or not grid:
        raise ParamError("grid", f"Give at least one parameter of {kind} with a list of values.")
    unknown = sorted(str(name) for name in grid if name not in declared)
    if unknown:
        raise ParamError(unknown[0], f"{unknown[0]} is not a parameter of {kind}.")
    for name, values in grid.items():
        if not isinstance(values, list | tuple):
            raise ParamError(name, f"{name} needs a list of values.")
        if not values:
            raise ParamError(name, f"{name} needs at least one value.")
        if len(values) > max_combinations:  # before the product: a list of millions is never multiplied out
            raise ParamError(name, f"{name} has {len(values):,} values: at most {max_combinations:,} are allowed.")
    size = math.prod(len(values) for values in grid.values())
    if size > max_combinations:
        raise ParamError(
            "grid", f"{size:,} combinations are more than the {max_combinations:,} allowed: try fewer values."
        )
    names, cleaned = [], []
    for param in KINDS[kind].params:
        if param.name not in grid:
            continue
        values: list = []
        for raw in grid[param.name]:
            value = None if raw is None and param.default is None else param.clean(raw)
            if value not in values:
                values.append(value)
        names.append(param.name)
        cleaned.append(tuple(values))
    return Grid(names=tuple(names), values=tuple(cleaned))


def combinations(kind: str, base: dict, grid: Grid) -> tuple[list[dict], int]:
    """(every combination the kind accepts, in grid order, each a full set of cleaned parameters; how many the
    kind refused, such as fast ≥ slow). `base` gives the parameters the grid does not vary."""
    accepted, skipped = [], 0
    for values in itertools.product(*grid.values):
        try:
            accepted.append(validate(kind, {**base, **dict(zip(grid.names, values, strict=True))}))
        except ParamError:
            skipped += 1
    return accepted, skipped


# --- one stretch of bars and its indicators ---------------------------------------------------------


def _highest(values: np.ndarray, window: int) -> np.ndarray:
    return signals.rolling_extreme(values, window, highest=True)


def _lowest(values: np.ndarray, window: int) -> np.ndarray:
    return signals.rolling_extreme(values, window, highest=False)


INDICATORS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "sma": signals.sma,
    "ema": signals.ema,
    "rsi": signals.rsi,
    "highest": _highest,
    "lowest": _lowest,
}


class Bars:
    """Bar times and closes, with each indicator computed once per window length (read-only once cached)."""

    def __init__(self, times: np.ndarray, close: np.ndarray):
        if len(close) < 2:
            raise ValueError("a backtest needs at least two bars")
        if not np.all(np.isfinite(close)) or np.any(close <= 0):
            raise ValueError("prices must be positive numbers")
        self.times, self.close = times, close
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.close)

    def slice(self, start: int, stop: int) -> "Bars":
        """A window of these bars, with its own indicators (an average over a window starts with the window)."""
        return Bars(self.times[start:stop], self.close[start:stop])

    def indicator(self, name: str, window: int) -> np.ndarray:
        key = (name, window)
        values = self._cache.get(key)
        if values is None:
            values = INDICATORS[name](self.close, window)
            values.flags.writeable = False  # shared by every combination: never changed in place
            self._cache[key] = values
        return values


def crossings(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signals.crosses_above(a, b), signals.crosses_above(b, a)) from one pass: b − a is exactly −(a − b), so the
    side of b against a is the mirror of the side of a against b, and the same bars reset it (a NaN in either)."""
    side = signals._side(a, b)
    above, below = np.zeros(len(side), dtype=bool), np.zeros(len(side), dtype=bool)
    known = np.flatnonzero(side)  # the bars with a side; between two of them, only equal bars or NaNs
    if len(known) < 2:
        return above, below
    sides = side[known]
    later = known[1:]
    missing = np.isnan(a) | np.isnan(b)  # a NaN between two known bars forgets the earlier side
    count = int(np.count_nonzero(missing))
    if not count or missing[:count].all():  # only before the first known bar (indicators warming up): none between
        kept = np.ones(len(later), dtype=bool)
    else:
        resets = np.cumsum(missing)
        kept = resets[later] == resets[known[:-1]]
    above[later[kept & (sides[1:] > 0) & (sides[:-1] < 0)]] = True
    below[later[kept & (sides[1:] < 0) & (sides[:-1] > 0)]] = True
    return above, below


def events(kind: str, params: dict, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
    """signals.events(kind, params, bars.close), from the cached indicators: equal, bar for bar."""
    close = bars.close
    if kind in {"sma_crossover", "ema_crossover"}:
        name = "sma" if kind == "sma_crossover" else "ema"
        fast, slow = bars.indicator(name, int(params["fast"])), bars.indicator(name, int(params["slow"]))
        if kind == "ema_crossover":  # as signals.events: meaningful only after `slow` bars
            warm = int(params["slow"]) - 1
            fast, slow = fast.copy(), slow.copy()
            fast[:warm] = np.nan
            slow[:warm] = np.nan
        return crossings(fast, slow)
    if kind == "rsi_reversion":
        strength = bars.indicator("rsi", int(params["period"]))
        lower = np.full(close.shape, float(params["lower"]))
        upper = np.full(close.shape, float(params["upper"]))
        return crossings(lower, strength)[0], crossings(strength, upper)[0]
    if kind == "breakout":
        lookback = int(params["lookback"])
        high, low = bars.indicator("highest", lookback), bars.indicator("lowest", lookback)
        return crossings(close, high)[0], crossings(low, close)[0]
    raise ValueError(f"no events for kind {kind!r}")


def _events_only(kind: str, params: dict) -> bool:
    """True when only event parameters are set: the others (protective exits) are absent or None."""
    known = EVENT_PARAMS.get(kind)
    if known is None:
        return False
    return all(value is None for name, value in params.items() if name not in known)


def simulate(
    kind: str, params: dict, bars: Bars, *, capital: float, fee_bps: float, slippage_bps: float, trade_from: int = 0
) -> engine.Simulation:
    """engine.run(...) of these bars, with the events built from the cached indicators and the engine's own
    all-in simulation; any other kind or parameter set goes through engine.run itself."""
    if not _events_only(kind, params):
        return engine.run(
            kind=kind,
            params=params,
            times=bars.times,
            close=bars.close,
            capital=capital,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            trade_from=trade_from,
        )
    fee, slippage = fee_bps / 10_000, slippage_bps / 10_000
    traded_times, traded_close = bars.times[trade_from:], bars.close[trade_from:]
    if len(traded_close) < 2:
        raise ValueError("a backtest needs at least two bars to trade on")
    entries, exits = events(kind, params, bars)  # the indicators warm up on every bar
    entries, exits = entries[trade_from:], exits[trade_from:]
    entries[-1] = False  # as engine.run: opening on the last close would only pay two fees
    equity, in_position, trades, fees = engine._all_in(
        traded_close, entries, exits, capital=capital, fee=fee, slippage=slippage
    )
    return engine.Simulation(
        times=traded_times, close=traded_close, equity=equity, in_position=in_position, trades=trades, fees_paid=fees
    )


# --- ranking -------------------------------------------------------------------------------------------


def best_index(figures: list[dict], objective: str) -> int | None:
    """The combination with the best objective (max_drawdown: the lowest); the first one on a tie; None when no
    combination has the objective defined (a Sharpe ratio with no variance, say)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    lowest = objective in MINIMISED
    best, best_value = None, None
    for index, row in enumerate(figures):
        value = row.get(objective)
        if value is None or not math.isfinite(value):
            continue
        if best is None or (value < best_value if lowest else value > best_value):
            best, best_value = index, value
    return best


# --- the deflated Sharpe ratio (Bailey and López de Prado, 2014) -----------------------------------


def expected_maximum_sharpe(trials: int, sharpe_variance: float) -> float:
    """E[max SR] of `trials` independent trials whose Sharpe ratios have this variance, all with a true SR of 0:
    √V · ((1 − g) Φ⁻¹(1 − 1/N) + g Φ⁻¹(1 − 1/(N e))), g the Euler-Mascheroni constant. A single trial, or no
    variance, expects 0."""
    if trials < 2 or sharpe_variance <= 0:
        return 0.0
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials) + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e))
    )


def probabilistic_sharpe(
    sharpe: float, benchmark: float, *, observations: int, skewness: float, kurtosis: float
) -> float | None:
    """PSR: the probability that the true Sharpe ratio exceeds `benchmark`, given `observations` returns with
    this skewness and (non-excess) kurtosis: Φ((SR − SR*) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²)).
    Sharpe ratios per observation, not annualised. None when it is not defined."""
    spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if observations < 2 or not spread > 0:
        return None
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread))


def deflated_sharpe(
    *, sharpe: float, trials: int, sharpe_variance: float, observations: int, skewness: float, kurtosis: float
) -> float | None:
    """DSR: the PSR of the best trial against the Sharpe ratio its selection among `trials` would give by luck."""
    return probabilistic_sharpe(
        sharpe,
        expected_maximum_sharpe(trials, sharpe_variance),
        observations=observations,
        skewness=skewness,
        kurtosis=kurtosis,
    )


def daily_returns(simulation: engine.Simulation) -> np.ndarray:
    """The daily equity returns metrics.compute reads its Sharpe ratio from."""
    daily = metrics.daily_equity(simulation)
    return daily[1:] / daily[:-1] - 1 if len(daily) > 1 else np.array([])


def sharpe_deflation(figures: list[dict], best: engine.Simulation) -> dict | None:
    """The deflated Sharpe ratio of `best` among all trials (`figures`, metrics.compute of each), with its inputs:
    Sharpe ratios per day (the metrics' annualised ones over √365); skewness and kurtosis of the best's daily
    returns; the variance of the trials' Sharpe ratios (sample variance, over the trials that have one)."""
    returns = daily_returns(best)
    if len(returns) < 2:
        return None
    deviation = returns.std(ddof=1)
    if not deviation > 0:
        return None
    sharpe = float(returns.mean() / deviation)
    centred = returns - returns.mean()
    spread = float(np.mean(centred**2))
    skewness = float(np.mean(centred**3) / spread**1.5)
    kurtosis = float(np.mean(centred**4) / spread**2)
    per_day = math.sqrt(metrics.DAYS_PER_YEAR)
    trial_sharpes = [row["sharpe"] / per_day for row in figures if row.get("sharpe") is not None]
    variance = float(np.var(trial_sharpes, ddof=1)) if len(trial_sharpes) > 1 else 0.0
    trials = len(figures)
    benchmark = expected_maximum_sharpe(trials, variance)
    value = probabilistic_sharpe(sharpe, benchmark, observations=len(returns), skewness=skewness, kurtosis=kurtosis)
    return {
        "value": value,
        "sharpe": sharpe * per_day,
        "expected_maximum_sharpe": benchmark * per_day,
        "probabilistic_sharpe": probabilistic_sharpe(
            sharpe, 0.0, observations=len(returns), skewness=skewness, kurtosis=kurtosis
        ),
        "trials": trials,
        "sharpe_variance": variance * metrics.DAYS_PER_YEAR,
        "skewness": skewness,
        "kurtosis": kurtosis,
        "observations": len(returns),
    }


# --- the whole run -------------------------------------------------------------------------------------


class _Progress:
    """Counts units of work; calls `report(percent)` each time another PROGRESS_STEP percent is done."""

    def __init__(self, total: int, report: Callable[[int], None] | None):
        self.total, self.report = max(total, 1), report
        self.done = 0
        self.reported = 0

    def tick(self, units: int = 1) -> None:
        self.done += units
        percent = 100 * self.done // self.total
        if self.report is not None and percent >= self.reported + PROGRESS_STEP:
            self.reported = percent
            self.report(percent)


@dataclass(frozen=True)
class Window:
    """One walk-forward step: the best combination on the train bars, then those parameters on the test bars."""

    train: tuple[int, int]  # bar indices [start, stop)
    test: tuple[int, int]
    best: int | None  # index into the combinations; None: none had the objective defined, the window stays in cash
    in_sample: dict | None  # metrics.compute of the best on the train bars
    out_of_sample: dict  # metrics.compute of the test bars
    simulation: engine.Simulation  # the test bars, from the equity the previous window ended with


@dataclass(frozen=True)
class Outcome:
    figures: list[dict]  # metrics.compute of each combination over all the bars, in combination order
    best: int | None
    deflated_sharpe: dict | None
    windows: list[Window]
    out_of_sample: dict | None  # metrics.compute of the stitched test windows
    stitched: engine.Simulation | None


def walk_forward_windows(bars: int, train_bars: int, test_bars: int) -> list[tuple[int, int, int]]:
    """(start, split, stop) of each full window: train [start, split), test [split, stop); step = test_bars."""
    if train_bars < 2 or test_bars < 2:
        raise ValueError("train and test windows need at least two bars each")
    last = bars - train_bars - test_bars
    return [(start, start + train_bars, start + train_bars + test_bars) for start in range(0, last + 1, test_bars)]


def _flat(bars: Bars, capital: float) -> engine.Simulation:
    n = len(bars)
    return engine.Simulation(
        times=bars.times,
        close=bars.close,
        equity=np.full(n, capital),
        in_position=np.zeros(n, dtype=bool),
        trades=[],
        fees_paid=0.0,
    )


def stitch(simulations: list[engine.Simulation]) -> engine.Simulation:
    """Consecutive test windows as one simulation: equity, positions and trades end to end (trade bar indices
    shifted to the stitched bars)."""
    trades, offset = [], 0
    for simulation in simulations:
        trades.extend(
            dataclasses.replace(trade, entry_index=trade.entry_index + offset, exit_index=trade.exit_index + offset)
            for trade in simulation.trades
        )
        offset += len(simulation.times)
    return engine.Simulation(
        times=np.concatenate([s.times for s in simulations]),
        close=np.concatenate([s.close for s in simulations]),
        equity=np.concatenate([s.equity for s in simulations]),
        in_position=np.concatenate([s.in_position for s in simulations]),
        trades=trades,
        fees_paid=float(sum(s.fees_paid for s in simulations)),
    )


def optimize(
    *,
    kind: str,
    combos: list[dict],
    times: np.ndarray,
    close: np.ndarray,
    capital: float,
    fee_bps: float,
    slippage_bps: float,
    objective: str,
    walk_forward: tuple[int, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Every combination over all the bars (each one's metrics as its backtest's), the best by `objective` and
    its deflated Sharpe ratio; with `walk_forward` (train_bars, test_bars), rolling windows: the best on each
    train window traded on the test window after it (its indicators warmed on the train bars), starting from
    the equity the previous test window ended with, and the metrics of those test windows stitched together."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    if not combos:
        raise ValueError("no combination to try")
    bars = Bars(times, close)
    steps = walk_forward_windows(len(bars), *walk_forward) if walk_forward else []
    if walk_forward and not steps:
        train_bars, test_bars = walk_forward
        raise ValueError(
            f"Only {len(bars)} bars in this range: walk-forward needs at least {train_bars + test_bars} "
            f"({train_bars} to train on and {test_bars} to test)."
        )
    tracker = _Progress(len(combos) * (1 + len(steps)) + len(steps), progress)
    costs = {"capital": capital, "fee_bps": fee_bps, "slippage_bps": slippage_bps}

    def evaluate(stretch: Bars) -> list[dict]:
        rows = []
        for params in combos:
            rows.append(metrics.compute(simulate(kind, params, stretch, **costs), capital=capital))
            tracker.tick()
        return rows

    figures = evaluate(bars)
    best = best_index(figures, objective)
    deflation = None
    if best is not None:
        deflation = sharpe_deflation(figures, simulate(kind, combos[best], bars, **costs))

    windows: list[Window] = []
    equity = capital
    for start, split, stop in steps:
        train = bars.slice(start, split)
        in_sample_rows = evaluate(train)
        chosen = best_index(in_sample_rows, objective)
        stretch = bars.slice(start, stop)
        if chosen is None:
            tested = _flat(stretch.slice(split - start, stop - start), equity)
        else:
            tested = simulate(
                kind,
                combos[chosen],
                stretch,
                capital=equity,
                fee_bps=fee_bps,
                slippage_bps=slippage_bps,
                trade_from=split - start,
            )
        windows.append(
            Window(
                train=(start, split),
                test=(split, stop),
                best=chosen,
                in_sample=in_sample_rows[chosen] if chosen is not None else None,
                out_of_sample=metrics.compute(tested, capital=equity),
                simulation=tested,
            )
        )
        equity = float(tested.equity[-1])
        tracker.tick()
    stitched = stitch([window.simulation for window in windows]) if windows else None
    return Outcome(
        figures=figures,
        best=best,
        deflated_sharpe=deflation,
        windows=windows,
        out_of_sample=metrics.compute(stitched, capital=capital) if stitched is not None else None,
        stitched=stitched,
    )
