"""The simulation: long-only, all-in; a signal read on a bar's close fills at that close (± slippage),
paying the fee on each side; a position still open at the end is closed at the last close."""

from dataclasses import dataclass

import numpy as np

from . import signals
from .kinds import TIMEFRAMES

MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class Trade:
    """A closed round trip."""

    entry_index: int
    exit_index: int
    entry_price: float  # fill price, slippage included
    exit_price: float
    quantity: float
    cost: float  # cash paid, fee included
    proceeds: float  # cash received, fee deducted

    @property
    def pnl(self) -> float:
        return self.proceeds - self.cost

    @property
    def return_(self) -> float:
        return self.proceeds / self.cost - 1


@dataclass(frozen=True)
class Simulation:
    times: np.ndarray  # epoch ms, int64
    close: np.ndarray
    equity: np.ndarray  # cash + position marked at the close, every bar
    in_position: np.ndarray  # bool, every bar
    trades: list[Trade]
    fees_paid: float


def _all_in(close, entries, exits, *, capital: float, fee: float, slippage: float) -> tuple:
    n = len(close)
    cash, quantity = capital, 0.0
    cash_at = np.empty(n)
    quantity_at = np.empty(n)
    trades: list[Trade] = []
    fees = 0.0
    entry = None
    last = 0
    # only the event bars need a decision; between them cash and quantity stay as they are
    for i in np.flatnonzero(entries | exits):
        cash_at[last:i], quantity_at[last:i] = cash, quantity
        last = i
        if quantity == 0 and entries[i]:
            price = close[i] * (1 + slippage)
            quantity = cash / (price * (1 + fee))
            fees += quantity * price * fee
            entry = (i, price, cash)
            cash = 0.0
        elif quantity > 0 and exits[i]:
            price = close[i] * (1 - slippage)
            gross = quantity * price
            fees += gross * fee
            cash = gross * (1 - fee)
            trades.append(Trade(entry[0], i, entry[1], price, quantity, entry[2], cash))
            quantity, entry = 0.0, None
    cash_at[last:], quantity_at[last:] = cash, quantity
    if quantity > 0:  # still open at the end: closed at the last close
        i = n - 1
        price = close[i] * (1 - slippage)
        gross = quantity * price
        fees += gross * fee
        cash = gross * (1 - fee)
        trades.append(Trade(entry[0], i, entry[1], price, quantity, entry[2], cash))
        cash_at[i], quantity_at[i] = cash, 0.0
    equity = cash_at + quantity_at * close
    in_position = quantity_at > 0  # held after a bar's close: the entry bar counts, the exit bar (any exit) not
    return equity, in_position, trades, fees


def _dca(times, close, *, amount: float, every_days: int, capital: float, fee: float, slippage: float) -> tuple:
    """Buy `amount` (fee included) every `every_days` days while cash lasts; each lot is closed at the end."""
    n = len(close)
    period = every_days * MS_PER_DAY
    buy_bars = np.flatnonzero(np.diff((times - times[0]) // period, prepend=-1) > 0)
    cash, quantity, fees = capital, 0.0, 0.0
    cash_at, quantity_at = np.empty(n), np.empty(n)
    lots = []
    last = 0
    for i in buy_bars:
        cash_at[last:i], quantity_at[last:i] = cash, quantity
        last = i
        spend = min(amount, cash)
        if spend <= 0:
            continue
        price = close[i] * (1 + slippage)
        bought = spend / (price * (1 + fee))
        fees += bought * price * fee
        cash -= spend
        quantity += bought
        lots.append((i, price, bought, spend))
    cash_at[last:], quantity_at[last:] = cash, quantity
    exit_price = close[-1] * (1 - slippage)
    trades = []
    for i, price, bought, spend in lots:
        gross = bought * exit_price
        fees += gross * fee
        trades.append(Trade(i, n - 1, price, exit_price, bought, spend, gross * (1 - fee)))
    final_cash = cash + sum(trade.proceeds for trade in trades)
    cash_at[-1], quantity_at[-1] = final_cash, 0.0
    equity = cash_at + quantity_at * close
    in_position = quantity_at > 0  # held after a bar's close: the entry bar counts, the exit bar (any exit) not
    return equity, in_position, trades, fees


def run(
    *,
    kind: str,
    params: dict,
    times: np.ndarray,
    close: np.ndarray,
    capital: float,
    fee_bps: float,
    slippage_bps: float,
    trade_from: int = 0,
) -> Simulation:
    """Deterministic: the same inputs always give the same result. Bars before `trade_from` only warm up the
    indicators (a paper run's history before it started): no trade happens on them."""
    if len(close) < 2:
        raise ValueError("a backtest needs at least two bars")
    if not np.all(np.isfinite(close)) or np.any(close <= 0):
        raise ValueError("prices must be positive numbers")
    fee, slippage = fee_bps / 10_000, slippage_bps / 10_000
    traded_times, traded_close = times[trade_from:], close[trade_from:]
    if len(traded_close) < 2:
        raise ValueError("a backtest needs at least two bars to trade on")
    if kind == "dca":
        equity, in_position, trades, fees = _dca(
            traded_times,
            traded_close,
            amount=float(params["amount"]),
            every_days=int(params["every_days"]),
            capital=capital,
            fee=fee,
            slippage=slippage,
        )
    else:
        entries, exits = signals.events(kind, params, close)  # the indicators warm up on every bar
        entries, exits = entries[trade_from:], exits[trade_from:]
        entries[-1] = False  # opening on the last close would only pay two fees: the test ends there
        equity, in_position, trades, fees = _all_in(
            traded_close, entries, exits, capital=capital, fee=fee, slippage=slippage
        )
    return Simulation(
        times=traded_times, close=traded_close, equity=equity, in_position=in_position, trades=trades, fees_paid=fees
    )


GAP_BARS_MAX = 6  # stored points further apart than this many bars are not history at the timeframe's resolution


def covered_from(times_ms: np.ndarray, timeframe: str) -> int:
    """The index of the first point of the newest stretch in which stored points are never more than GAP_BARS_MAX
    bars apart: where the history really has the timeframe's resolution. Retention keeps old prices daily, so
    hourly bars built on them would be daily bars in disguise, mixed with real hourly ones."""
    if len(times_ms) < 2:
        return 0
    too_far = np.flatnonzero(np.diff(times_ms) > GAP_BARS_MAX * TIMEFRAMES[timeframe])
    return int(too_far[-1]) + 1 if len(too_far) else 0


def bars(times_ms: np.ndarray, prices: np.ndarray, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Stored points → bars of the timeframe: each bar's close is its last point, stamped at the bar's start."""
    size = TIMEFRAMES[timeframe]
    bucket = times_ms // size
    last_of_bucket = np.flatnonzero(np.diff(bucket, append=bucket[-1] + 1) != 0) if len(bucket) else bucket
    return bucket[last_of_bucket] * size, prices[last_of_bucket]


def signal_on_last_bar(*, kind: str, params: dict, times: np.ndarray, close: np.ndarray, since_ms: int) -> str | None:
    """What the strategy says on the newest bar: "buy", "sell" or None. DCA buys on its schedule from `since_ms`."""
    if len(close) < 2:
        return None
    if kind == "dca":
        period = int(params["every_days"]) * MS_PER_DAY
        slot = (times[-1] - since_ms) // period
        previous = (times[-2] - since_ms) // period if times[-2] >= since_ms else -1
        return "buy" if times[-1] >= since_ms and slot != previous else None
    entries, exits = signals.events(kind, params, close)
    if entries[-1]:
        return "buy"
    if exits[-1]:
        return "sell"
    return None
