"""The simulation: long-only, all-in; a signal read on a bar's close fills at that close (± slippage),
paying the fee on each side; a position still open at the end is closed at the last close.

Protective exits (optional `stop_loss_pct`, `take_profit_pct`, `trailing_stop_pct`, fractions) are read on the
closes too, from the bar after the entry: the position is sold on the first close at or below
entry × (1 − stop), at or above entry × (1 + target), or at or below the highest close since the entry (the
entry bar's included) × (1 − trail), unless the strategy's own exit signal comes first. `entry` is the fill price
(slippage included), as the trade shows it. The history has closes only, so the close is the intrabar price: a
close that gaps through a stop fills at that close (less slippage), not at the stop. After any exit the position
stays flat until an entry signal on a later bar.
"""

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
    exit_reason: str = "signal"  # signal | stop_loss | take_profit | trailing_stop | end (closed at the last bar)

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


@dataclass(frozen=True)
class Exits:
    """The protective exits as fractions; None is off."""

    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None

    @classmethod
    def of(cls, params: dict) -> "Exits":
        def fraction(name: str) -> float | None:
            value = params.get(name)
            return None if value is None else float(value)

        return cls(fraction("stop_loss_pct"), fraction("take_profit_pct"), fraction("trailing_stop_pct"))

    @property
    def active(self) -> bool:
        return self != NO_EXITS

    def hit(self, close: np.ndarray, entry_price: float) -> tuple[int, str] | None:
        """(offset, reason) of the first close after `close[0]` (the entry bar's) that reaches an exit, or None.
        A close within signals.RELATIVE_TOLERANCE of a level reaches it (12 × 1.1 is 13.200000000000001 in
        floats: a close of 13.2 takes that profit). The stop loss is named before the trailing stop when both
        are reached on the same close."""
        later = close[1:]
        below, above = 1 + signals.RELATIVE_TOLERANCE, 1 - signals.RELATIVE_TOLERANCE
        reasons = []
        if self.stop_loss is not None:
            reasons.append(("stop_loss", later <= entry_price * (1 - self.stop_loss) * below))
        if self.take_profit is not None:
            reasons.append(("take_profit", later >= entry_price * (1 + self.take_profit) * above))
        if self.trailing_stop is not None:
            highest = np.maximum.accumulate(close)[1:]  # only ever rises: the trail ratchets up, never down
            reasons.append(("trailing_stop", later <= highest * (1 - self.trailing_stop) * below))
        if not reasons or not len(later):
            return None
        reached = np.logical_or.reduce([mask for _, mask in reasons])
        if not reached.any():
            return None
        first = int(np.argmax(reached))
        return first + 1, next(reason for reason, mask in reasons if mask[first])


NO_EXITS = Exits()


def _all_in(close, entries, exits, *, capital: float, fee: float, slippage: float, protect: Exits = NO_EXITS) -> tuple:
    """One round trip at a time: the next entry signal, then the first of the next exit signal, a protective exit
    (`protect`) or the last bar. Each trade's exit is found with NumPy on the bars it can span, never a Python
    step per bar."""
    n = len(close)
    cash = capital
    cash_at = np.empty(n)
    quantity_at = np.zeros(n)
    trades: list[Trade] = []
    fees = 0.0
    entry_bars, exit_bars = np.flatnonzero(entries), np.flatnonzero(exits)
    cursor = 0  # the first bar not settled yet; the position is flat there
    while (k := int(np.searchsorted(entry_bars, cursor))) < len(entry_bars):
        i = int(entry_bars[k])
        cash_at[cursor:i] = cash
        price = close[i] * (1 + slippage)
        quantity = cash / (price * (1 + fee))
        fees += quantity * price * fee
        cost = cash
        j = int(np.searchsorted(exit_bars, i, side="right"))
        exit_index, reason = (int(exit_bars[j]), "signal") if j < len(exit_bars) else (n - 1, "end")
        protective = protect.hit(close[i : exit_index + 1], price)
        if protective is not None:
            exit_index, reason = i + protective[0], protective[1]
        cash_at[i:exit_index] = 0.0
        quantity_at[i:exit_index] = quantity
        sell = close[exit_index] * (1 - slippage)
        gross = quantity * sell
        fees += gross * fee
        cash = gross * (1 - fee)
        trades.append(Trade(i, exit_index, price, sell, quantity, cost, cash, reason))
        cursor = exit_index + 1
        cash_at[exit_index] = cash
    cash_at[cursor:] = cash
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
        trades.append(Trade(i, n - 1, price, exit_price, bought, spend, gross * (1 - fee), "end"))
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
            traded_close, entries, exits, capital=capital, fee=fee, slippage=slippage, protect=Exits.of(params)
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


def signal_on_last_bar(
    *,
    kind: str,
    params: dict,
    times: np.ndarray,
    close: np.ndarray,
    since_ms: int,
    position: tuple[float, int] | None = None,
) -> str | None:
    """What the strategy says on the newest bar: "buy", "sell" or None. DCA buys on its schedule from `since_ms`.
    `position` is what is held: (entry fill price, the bar it was bought on). A protective exit reached on any
    close after that bar (the newest included) says "sell": the backtest would have sold on the first of them,
    so a bar that could not be acted on (a refused order, a missed sync) still sells on the next one."""
    if len(close) < 2:
        return None
    if kind == "dca":
        period = int(params["every_days"]) * MS_PER_DAY
        slot = (times[-1] - since_ms) // period
        previous = (times[-2] - since_ms) // period if times[-2] >= since_ms else -1
        return "buy" if times[-1] >= since_ms and slot != previous else None
    if position is not None:
        entry_price, entry_bar_ms = position
        if Exits.of(params).hit(close[int(np.searchsorted(times, entry_bar_ms)) :], entry_price) is not None:
            return "sell"
    entries, exits = signals.events(kind, params, close)
    if entries[-1]:
        return "buy"
    if exits[-1]:
        return "sell"
    return None
