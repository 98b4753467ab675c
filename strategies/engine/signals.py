"""Indicators and entry/exit events, vectorised (NumPy); NaN where an indicator is not defined yet."""

import numpy as np


def sma(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(values.shape, np.nan)
    if len(values) >= window:
        cumulative = np.cumsum(np.insert(values, 0, 0.0))
        out[window - 1 :] = (cumulative[window:] - cumulative[:-window]) / window
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
    """Wilder's RSI (smoothing α = 1 / period), defined from bar `period` on."""
    out = np.full(values.shape, np.nan)
    if len(values) <= period:
        return out
    change = np.diff(values)
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    average_gain, average_loss = gains[:period].mean(), losses[:period].mean()
    for i in range(period, len(values)):
        if i > period:
            average_gain = (average_gain * (period - 1) + gains[i - 1]) / period
            average_loss = (average_loss * (period - 1) + losses[i - 1]) / period
        out[i] = 100.0 if average_loss == 0 else 100.0 - 100.0 / (1.0 + average_gain / average_loss)
    return out


def crosses_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True on the bar where `a` goes from below `b` to above it (strictly; NaN never crosses)."""
    events = np.zeros(a.shape, dtype=bool)
    events[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return events


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
