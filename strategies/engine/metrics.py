"""Backtest metrics from the equity curve and the trades (glossary: docs/metrics.md)."""

import math

import numpy as np

from .backtest import MS_PER_DAY, Simulation

DAYS_PER_YEAR = 365  # crypto trades every day
RELATIVE = ("alpha", "beta", "tracking_error", "information_ratio")
MIN_VARIANCE = 1e-30  # empyrical's floor: a benchmark that barely moves has no beta


def _day_ends(simulation: Simulation) -> np.ndarray:
    """The index of the last bar of each calendar day (UTC) the series covers."""
    day = simulation.times // MS_PER_DAY
    return np.flatnonzero(np.diff(day, append=day[-1] + 1) != 0)


def daily_equity(simulation: Simulation) -> np.ndarray:
    """The equity at the end of each calendar day (UTC) the series covers."""
    return simulation.equity[_day_ends(simulation)]


def relative(returns: np.ndarray, benchmark: np.ndarray) -> dict[str, float | None]:
    """Alpha, beta, tracking error and information ratio of daily returns against a benchmark's on the same days, as
    empyrical defines them with 365 periods a year and a risk-free rate of 0: beta = Σ (b - b̄) r / Σ (b - b̄)²,
    alpha = (1 + mean(r - beta b))^365 - 1, tracking error = the sample stdev of r - b × √365, information ratio =
    mean(r - b) / that stdev × √365. None where undefined (fewer than 2 days, a flat benchmark, 0 tracking error)."""
    figures: dict[str, float | None] = dict.fromkeys(RELATIVE)
    if len(returns) < 2:
        return figures
    centred = benchmark - benchmark.mean()
    variance = float(np.mean(centred * centred))
    if variance >= MIN_VARIANCE:
        beta = float(np.mean(centred * returns)) / variance
        figures["beta"] = beta
        try:
            figures["alpha"] = (1.0 + float(np.mean(returns - beta * benchmark))) ** DAYS_PER_YEAR - 1
        except OverflowError:
            pass  # beyond a float: left out
    active = returns - benchmark
    # identical active returns have no spread, whatever the float residue of their mean
    deviation = 0.0 if active.max() == active.min() else float(active.std(ddof=1))
    figures["tracking_error"] = deviation * math.sqrt(DAYS_PER_YEAR)
    if deviation > 0:
        figures["information_ratio"] = float(active.mean()) / deviation * math.sqrt(DAYS_PER_YEAR)
    return figures


def drawdowns(equity: np.ndarray) -> np.ndarray:
    """Fall from the running peak, as a positive fraction, at every point."""
    peak = np.maximum.accumulate(equity)
    return (peak - equity) / peak


def max_drawdown_duration_days(simulation: Simulation) -> float:
    """The longest time spent below a previous peak, in days (from the peak's bar to the recovery's)."""
    equity, times = simulation.equity, simulation.times
    under = equity < np.maximum.accumulate(equity)
    if not under.any():
        return 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([False], under, [False])).astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2]  # each run of bars below the peak: [start, end)
    finish = times[np.minimum(ends, len(times) - 1)]  # recovered at `end`, or still under at the last bar
    return float((finish - times[starts - 1]).max()) / MS_PER_DAY


def compute(simulation: Simulation, *, capital: float) -> dict[str, float | int | None]:
    equity = simulation.equity
    final = float(equity[-1])
    total_return = final / capital - 1
    span_days = (simulation.times[-1] - simulation.times[0]) / MS_PER_DAY
    cagr = (final / capital) ** (DAYS_PER_YEAR / span_days) - 1 if span_days > 0 and final > 0 else None
    day_ends = _day_ends(simulation)
    daily = simulation.equity[day_ends]
    returns = daily[1:] / daily[:-1] - 1 if len(daily) > 1 else np.array([])
    held = simulation.close[day_ends]  # buy and hold of the same coin over the same bars: its equity moves as the close
    against = relative(returns, held[1:] / held[:-1] - 1 if len(held) > 1 else np.array([]))
    sharpe = sortino = None
    if len(returns) >= 2:
        deviation = returns.std(ddof=1)
        mean = returns.mean()
        sharpe = float(mean / deviation * math.sqrt(DAYS_PER_YEAR)) if deviation > 0 else None
        downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
        sortino = float(mean / downside * math.sqrt(DAYS_PER_YEAR)) if downside > 0 else None
    trades = simulation.trades
    wins = [t for t in trades if t.pnl > 0]
    gross_profit = sum(t.pnl for t in wins)
    gross_loss = -sum(t.pnl for t in trades if t.pnl < 0)
    falls = drawdowns(equity)
    trough = int(falls.argmax())  # the first bar at the deepest fall
    return {
        "total_return": total_return,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": float(falls[trough]),
        "max_drawdown_at": int(simulation.times[trough]) if falls[trough] > 0 else None,
        "max_drawdown_duration_days": max_drawdown_duration_days(simulation),
        "win_rate": len(wins) / len(trades) if trades else None,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0 else None,
        "exposure": float(simulation.in_position.mean()),
        "trades": len(trades),
        "fees_paid": simulation.fees_paid,
        "buy_and_hold_return": float(simulation.close[-1] / simulation.close[0] - 1),
        "final_equity": final,
        **against,
    }
