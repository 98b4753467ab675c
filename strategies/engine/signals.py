"""Indicators and entry/exit events, vectorised (NumPy); NaN where an indicator is not defined yet.

Floats cannot tell two equal averages apart from two averages 1e-14 apart, so every comparison that makes an
event treats values within RELATIVE_TOLERANCE of each other (scaled to their size) as equal: rounding noise
on a flat series can never invent a crossover.
"""

import numpy as np

RELATIVE_TOLERANCE = 1e-9  # a billionth of the price: far above float noise, far below any tradable move


def sma(values: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean from cumulative sums of the series less its first value: a flat series averages exactly."""
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        base = values[0]
        cumulative = np.cumsum(np.insert(values - base, 0, 0.0))
        out[window - 1 :] = (cumulative[window:] - cumulative[:-window]) / window + base
    return out


def ema(values: np.ndarray, window: int) -> np.ndarray:
    """α = 2 / (window + 1), seeded with the first value (pandas' ewm(adjust=False))."""
    alpha = 2.0 / (window + 1)
    out = np.empty_like(values, dtype=float)
    if len(values):
        out[0] = values[0]
        for i in range(1, len(values)):  # a recurrence: each value needs the previous one
            out[i] = alpha * values[i] + (1 - alpha) * out[i - 1]
    return out


def rsi(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI (smoothing α = 1 / period), defined from bar `period` on. A change within the tolerance
    counts as no change; with neither gains nor losses yet (a flat series) the RSI is 50, neutral."""
    out = np.full(values.shape, np.nan)
    if len(values) <= period:
        return out
    change = np.diff(values)
    change[np.abs(change) <= RELATIVE_TOLERANCE * np.abs(values[1:])] = 0.0
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    average_gain, average_loss = gains[:period].mean(), losses[:period].mean()
    for i in range(period, len(values)):
        if i > period:
            average_gain = (average_gain * (period - 1) + gains[i - 1]) / period
            average_loss = (average_loss * (period - 1) + losses[i - 1]) / period
        if average_loss == 0:
            out[i] = 50.0 if average_gain == 0 else 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    return out


def _side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 where `a` is above `b`, −1 below, 0 where they are equal within the tolerance or either is NaN."""
    difference = a - b
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore"):
        side = np.sign(difference)
        side[~(np.abs(difference) > RELATIVE_TOLERANCE * scale)] = 0.0  # NaN compares False: no side
    return side


def crosses_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True on the bar where `a` ends up above `b` after last being below it. Equal bars in between (within the
    tolerance) are passed through: below, equal, above is one cross, on the bar above; below, equal, below
    (a touch) is none; a NaN forgets the side (an indicator warming up never crosses)."""
    side = _side(a, b)
    n = len(side)
    index = np.arange(n)
    known = np.where(side != 0, index, -1)
    reset = np.where(np.isnan(a) | np.isnan(b), index, -1)
    last_known = np.maximum.accumulate(known) if n else known
    last_reset = np.maximum.accumulate(reset) if n else reset
    previous = np.full(n, -1)
    previous[1:] = last_known[:-1]
    usable = (previous >= 0) & (previous > last_reset)
    previous_side = np.where(usable, side[np.maximum(previous, 0)], 0.0)
    return (side > 0) & (previous_side < 0)


def rolling_extreme(values: np.ndarray, window: int, *, highest: bool) -> np.ndarray:
    """The highest (or lowest) of the `window` bars before each bar; NaN until there are enough."""
    out = np.full(values.shape, np.nan)
    if len(values) > window:
        windows = np.lib.stride_tricks.sliding_window_view(values[:-1], window)
        out[window:] = windows.max(axis=1) if highest else windows.min(axis=1)
    return out


def events(kind: str, params: dict, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entries, exits): the bars whose close opens or closes the position."""
    if kind in {"sma_crossover", "ema_crossover"}:
        average = sma if kind == "sma_crossover" else ema
        fast, slow = average(close, int(params["fast"])), average(close, int(params["slow"]))
        if kind == "ema_crossover":  # an EMA is defined from the first bar, but only meaningful after `slow`
            fast[: int(params["slow"]) - 1] = np.nan
            slow[: int(params["slow"]) - 1] = np.nan
        return crosses_above(fast, slow), crosses_above(slow, fast)
    if kind == "rsi_reversion":
        strength = rsi(close, int(params["period"]))
        lower = np.full(close.shape, float(params["lower"]))
        upper = np.full(close.shape, float(params["upper"]))
        return crosses_above(lower, strength), crosses_above(strength, upper)
    if kind == "breakout":
        lookback = int(params["lookback"])
        high, low = rolling_extreme(close, lookback, highest=True), rolling_extreme(close, lookback, highest=False)
        return crosses_above(close, high), crosses_above(low, close)
    raise ValueError(f"no events for kind {kind!r}")
