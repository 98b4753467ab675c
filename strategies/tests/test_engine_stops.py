"""Protective exits (stop loss, take profit, trailing stop): against backtesting.py's `sl`/`tp` on the same series,
the intrabar rules on closes by hand, the parameters' bounds, and a backtest through the API."""

import time
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover
from django.utils import timezone

from market.models import Coin, PricePoint, Quote
from portfolios import services as portfolio_services
from portfolios.models import Order
from strategies import services
from strategies.engine import backtest, metrics
from strategies.engine.kinds import KINDS, PROTECTIVE_NAMES, ParamError, validate

DAY = 86_400_000
START = 1_700_000_000_000 // DAY * DAY


def random_walk(seed: int, bars: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0004, 0.035, bars)))
    return START + np.arange(bars, dtype=np.int64) * DAY, close


def reference(close: np.ndarray, fast: int, slow: int, fee: float, *, sl=None, tp=None, ts=None):
    """backtesting.py on Open = High = Low = Close: an SMA crossover bought on the close with `sl`/`tp` set from
    that close, and a percent trailing stop ratcheted on `trade.sl` after each close (TrailingStrategy's way, in
    percent rather than ATR). Returns ([(entry bar, exit bar)], total return)."""
    bars = len(close)
    padded = np.append(close, close[-1])  # as test_engine.py: the repeated bar makes the last close the final one
    frame = pd.DataFrame(
        {"Open": padded, "High": padded, "Low": padded, "Close": padded, "Volume": np.ones(len(padded))},
        index=pd.date_range("2023-11-14", periods=len(padded), freq="D"),
    )

    def average(values, window):
        return pd.Series(values).rolling(window).mean().to_numpy()

    class CrossWithExits(Strategy):
        def init(self):
            self.fast = self.I(average, self.data.Close, fast)
            self.slow = self.I(average, self.data.Close, slow)

        def next(self):
            price = self.data.Close[-1]
            for trade in self.trades:  # the trail follows the closes seen so far, only upwards
                if ts is not None:
                    trade.sl = max(trade.sl or -np.inf, price * (1 - ts))
            if crossover(self.fast, self.slow) and not self.position and len(self.data) < bars:
                levels = [price * (1 - level) for level in (sl, ts) if level is not None]
                self.buy(sl=max(levels) if levels else None, tp=price * (1 + tp) if tp is not None else None)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    test = FractionalBacktest(
        frame,
        CrossWithExits,
        cash=10_000,
        commission=fee,
        trade_on_close=True,
        finalize_trades=True,
        fractional_unit=1e-9,
    )
    stats = test.run()
    trades = stats["_trades"].sort_values("EntryBar")
    pairs = [(int(e), min(int(x), bars - 1)) for e, x in zip(trades["EntryBar"], trades["ExitBar"], strict=True)]
    return pairs, stats["Return [%]"] / 100


EXITS = [
    {"stop_loss_pct": "0.05"},
    {"take_profit_pct": "0.1"},
    {"trailing_stop_pct": "0.08"},
    {"stop_loss_pct": "0.04", "take_profit_pct": "0.15"},
    {"stop_loss_pct": "0.06", "take_profit_pct": "0.3", "trailing_stop_pct": "0.1"},
]


@pytest.mark.parametrize("exits", EXITS, ids=["sl", "tp", "trail", "sl+tp", "sl+tp+trail"])
@pytest.mark.parametrize("seed", [1, 7, 42, 2026])
def test_matches_backtesting_py_sl_tp_and_trailing(seed, exits):
    times, close = random_walk(seed)
    params = validate("sma_crossover", {"fast": 10, "slow": 30, **exits})
    result = backtest.run(
        kind="sma_crossover", params=params, times=times, close=close, capital=10_000, fee_bps=10, slippage_bps=0
    )
    expected_pairs, expected_return = reference(
        close,
        10,
        30,
        0.001,
        sl=float(exits["stop_loss_pct"]) if "stop_loss_pct" in exits else None,
        tp=float(exits["take_profit_pct"]) if "take_profit_pct" in exits else None,
        ts=float(exits["trailing_stop_pct"]) if "trailing_stop_pct" in exits else None,
    )
    assert [(t.entry_index, t.exit_index) for t in result.trades] == expected_pairs
    assert sum(t.exit_reason not in {"signal", "end"} for t in result.trades) >= 3  # the exits really act
    assert abs(metrics.compute(result, capital=10_000)["total_return"] - expected_return) <= 1e-6


def _one_entry(close, *, entry=1, **exits):
    entries = np.zeros(len(close), dtype=bool)
    entries[entry] = True
    return entries, np.zeros(len(close), dtype=bool), backtest.Exits(**exits)


def test_a_close_that_gaps_through_the_stop_fills_at_that_close():
    close = np.array([10.0, 10.0, 9.8, 8.0, 12.0])
    entries, exits, protect = _one_entry(close, stop_loss=0.05)
    _, _, trades, _ = backtest._all_in(close, entries, exits, capital=1000, fee=0.0, slippage=0.01, protect=protect)
    (trade,) = trades
    assert (trade.entry_index, trade.exit_index, trade.exit_reason) == (1, 3, "stop_loss")
    assert trade.entry_price == pytest.approx(10.1)  # the stop is 5 % under the fill: 9.595, so 9.8 holds
    assert trade.exit_price == pytest.approx(8.0 * 0.99)  # the close less slippage, not the stop price


def test_take_profit_fills_at_the_close_that_reaches_it():
    close = np.array([10.0, 10.0, 10.5, 12.5, 11.0])
    entries, exits, protect = _one_entry(close, take_profit=0.2)
    _, in_position, trades, _ = backtest._all_in(
        close, entries, exits, capital=1000, fee=0.0, slippage=0.0, protect=protect
    )
    (trade,) = trades
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (3, 12.5, "take_profit")
    assert list(in_position) == [False, True, True, False, False]


def test_the_trailing_stop_ratchets_only_upwards():
    # peak 12 puts the trail at 10.8; the fall to 11 and the rise to 11.5 leave it there (a trail from the latest
    # close would have dropped to 9.9, then 10.35); 10.85 holds, 10.7 sells
    close = np.array([10.0, 10.0, 12.0, 11.0, 11.5, 10.85, 10.7, 13.0])
    entries, exits, protect = _one_entry(close, trailing_stop=0.1)
    _, _, trades, _ = backtest._all_in(close, entries, exits, capital=1000, fee=0.0, slippage=0.0, protect=protect)
    (trade,) = trades
    assert (trade.exit_index, trade.exit_price, trade.exit_reason) == (6, 10.7, "trailing_stop")


@pytest.mark.parametrize("seed", range(12))
def test_trailing_exits_agree_with_a_bar_by_bar_walk(seed):
    times, close = random_walk(seed, 600)
    params = validate("breakout", {"lookback": 15, "trailing_stop_pct": "0.07"})
    result = backtest.run(
        kind="breakout", params=params, times=times, close=close, capital=1000, fee_bps=10, slippage_bps=5
    )
    assert any(t.exit_reason == "trailing_stop" for t in result.trades)
    for trade in result.trades:
        highest = close[trade.entry_index]
        for k in range(trade.entry_index + 1, trade.exit_index):  # the plain walk: held through every bar here
            highest = max(highest, close[k])
            assert close[k] > highest * (1 - 0.07)
        if trade.exit_reason == "trailing_stop":
            assert close[trade.exit_index] <= max(close[trade.entry_index : trade.exit_index + 1]) * (1 - 0.07)


def test_exits_never_come_before_or_on_the_entry_bar():
    # 1 % slippage puts the fill above the close: a 0.5 % stop is already under water on the entry bar itself
    close = np.array([10.0, 10.0, 10.0, 10.0])
    entries, exits, protect = _one_entry(close, stop_loss=0.005)
    _, _, trades, _ = backtest._all_in(close, entries, exits, capital=1000, fee=0.0, slippage=0.01, protect=protect)
    assert [(t.entry_index, t.exit_index, t.exit_reason) for t in trades] == [(1, 2, "stop_loss")]
    for seed in range(8):
        times, close = random_walk(seed, 400)
        params = validate("rsi_reversion", {"stop_loss_pct": "0.02", "take_profit_pct": "0.03"})
        result = backtest.run(
            kind="rsi_reversion", params=params, times=times, close=close, capital=1000, fee_bps=10, slippage_bps=50
        )
        assert result.trades
        assert all(t.entry_index < t.exit_index for t in result.trades)
        assert all(a.exit_index < b.entry_index for a, b in zip(result.trades, result.trades[1:], strict=False))


def test_after_a_protective_exit_only_a_later_entry_signal_reopens():
    close = np.array([10.0, 10.0, 9.0, 9.0, 9.5, 9.6])
    entries = np.array([False, True, True, False, True, False])  # the signal on the stop's own bar is not taken
    exits = np.zeros(6, dtype=bool)
    _, _, trades, _ = backtest._all_in(
        close, entries, exits, capital=1000, fee=0.0, slippage=0.0, protect=backtest.Exits(stop_loss=0.05)
    )
    assert [(t.entry_index, t.exit_index, t.exit_reason) for t in trades] == [(1, 2, "stop_loss"), (4, 5, "end")]


def test_the_exit_signal_wins_when_it_comes_first():
    close = np.array([10.0, 10.0, 9.7, 9.6, 9.0, 9.0])
    entries = np.array([False, True, False, False, False, False])
    exits = np.array([False, False, False, True, False, False])
    _, _, trades, _ = backtest._all_in(
        close, entries, exits, capital=1000, fee=0.0, slippage=0.0, protect=backtest.Exits(stop_loss=0.05)
    )
    assert [(t.exit_index, t.exit_reason) for t in trades] == [(3, "signal")]


def test_without_exits_the_simulation_is_unchanged():
    times, close = random_walk(5, 800)
    params = validate("sma_crossover", {"fast": 5, "slow": 20})
    assert not set(params) & PROTECTIVE_NAMES  # absent = off, and left out of the stored parameters
    plain = backtest.run(
        kind="sma_crossover", params=params, times=times, close=close, capital=1000, fee_bps=10, slippage_bps=5
    )
    assert all(t.exit_reason in {"signal", "end"} for t in plain.trades)
    off = validate("sma_crossover", {"fast": 5, "slow": 20, "stop_loss_pct": None})
    assert off == params


@pytest.mark.parametrize("kind", [name for name in KINDS if name != "dca"])
def test_every_position_kind_declares_the_three_exits(kind):
    declared = {param.name: param for param in KINDS[kind].params}
    assert set(declared) >= PROTECTIVE_NAMES
    cleaned = validate(kind, {"stop_loss_pct": "0.05", "take_profit_pct": 2, "trailing_stop_pct": Decimal("0.1")})
    assert (cleaned["stop_loss_pct"], cleaned["take_profit_pct"], cleaned["trailing_stop_pct"]) == (
        Decimal("0.05"),
        Decimal(2),
        Decimal("0.1"),
    )


BAD = [0, "0", "-0.05", Decimal("-1"), Decimal("1e2000000"), "1e2000000", "abc", True, False, 1.5, ""]
TOO_FAR = {"stop_loss_pct": "0.995", "take_profit_pct": "100.5", "trailing_stop_pct": "1"}


@pytest.mark.parametrize("raw", BAD, ids=[repr(value)[:20] for value in BAD])
@pytest.mark.parametrize("name", sorted(PROTECTIVE_NAMES))
def test_exit_bounds_are_checked_before_any_conversion(name, raw):
    started = time.perf_counter()
    with pytest.raises(ParamError) as caught:
        validate("sma_crossover", {"fast": 10, "slow": 30, name: raw})
    assert caught.value.field == name
    assert caught.value.message.startswith(f"{name} must be")  # refused for its value, by its declaration
    assert time.perf_counter() - started < 2  # building 1e2000000 as a number takes far longer


@pytest.mark.parametrize(("name", "raw"), TOO_FAR.items())
def test_exits_beyond_their_maximum_are_refused(name, raw):
    with pytest.raises(ParamError) as caught:
        validate("ema_crossover", {name: raw})
    assert caught.value.field == name
    assert "between" in caught.value.message


@pytest.mark.parametrize("name", sorted(PROTECTIVE_NAMES))
def test_dca_refuses_the_exits_and_says_why(name):
    with pytest.raises(ParamError) as caught:
        validate("dca", {name: "0.05"})
    assert caught.value.field == name
    assert "does not apply to dca" in caught.value.message


# --- through the API ---------------------------------------------------------------------------------

STOPPED_SERIES = ["10", "9", "8", "7", "12", "13", "11.3", "11.5", "11.6"]  # entry on 12, 5 % stop sells at 11.3


@pytest.mark.django_db
def test_a_backtest_with_a_stop_loss_over_the_api(alice_api, django_capture_on_commit_callbacks):
    coin = Coin.objects.create(id="stopcoin", symbol="stp", name="Stop coin")
    Quote.objects.create(coin=coin, current_price=Decimal("11.6"), last_updated=timezone.now())
    first = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=len(STOPPED_SERIES))
    PricePoint.objects.bulk_create(
        [
            PricePoint(coin=coin, ts=first + timedelta(days=day), price=Decimal(price))
            for day, price in enumerate(STOPPED_SERIES)
        ]
    )
    body = {
        "name": "Cross with a stop",
        "kind": "sma_crossover",
        "params": {"fast": 2, "slow": 3, "stop_loss_pct": "0.05"},
        "coin": "stopcoin",
    }
    created = alice_api.post("/api/v1/strategies/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["params"] == {"fast": 2, "slow": 3, "stop_loss_pct": "0.05"}
    payload = {
        "start": (first - timedelta(days=1)).isoformat(),
        "end": timezone.now().isoformat(),
        "fee_bps": "0",
        "slippage_bps": "0",
    }
    with django_capture_on_commit_callbacks(execute=True):
        queued = alice_api.post(f"/api/v1/strategies/{created.json()['id']}/backtests/", payload, format="json")
    assert queued.status_code == 202, queued.content
    result = alice_api.get(f"/api/v1/backtests/{queued.json()['id']}/").json()
    assert result["status"] == "succeeded", result["error"]
    day_ms = [int((first + timedelta(days=day)).timestamp() * 1000) // DAY * DAY for day in range(9)]
    (trade,) = result["trades"]
    assert (trade["entry_time"], trade["exit_time"]) == (day_ms[4], day_ms[6])  # sold by the stop, not at the end
    assert (Decimal(trade["entry_price"]), Decimal(trade["exit_price"])) == (Decimal(12), Decimal("11.3"))
    refused = alice_api.post("/api/v1/strategies/", body | {"params": {"stop_loss_pct": "1e2000000"}}, format="json")
    assert refused.status_code == 400
    assert "params.stop_loss_pct" in refused.json()["errors"]


# --- paper runs -------------------------------------------------------------------------------------

PAPER_DAY0 = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)


def paper_bar(coin: Coin, day: int, price: str) -> None:
    """A daily bar `day` days from day 0 (in the past), and the quote at that price (fresh)."""
    PricePoint.objects.create(coin=coin, ts=PAPER_DAY0 + timedelta(days=day, hours=12), price=Decimal(price))
    Quote.objects.update_or_create(
        coin=coin, defaults={"current_price": Decimal(price), "last_updated": timezone.now()}
    )


@pytest.fixture
def paper_run(alice):
    def start(**exits):
        coin = Coin.objects.create(id="papercoin", symbol="ppr", name="Paper coin")
        for day, price in enumerate(["10", "9", "8", "7"], start=-4):
            paper_bar(coin, day, price)
        strategy = services.create_strategy(
            owner=alice, name="Cross", kind="sma_crossover", params={"fast": 2, "slow": 3, **exits}, coin=coin
        )
        portfolio = portfolio_services.create_portfolio(owner=alice, name="Paper", starting_cash=Decimal("10000"))
        run = services.start_paper_run(strategy=strategy, user=alice, portfolio=portfolio)

        def evaluate():
            run.refresh_from_db()
            return services.evaluate_paper_run(run)

        return coin, evaluate

    return start


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("exits", "prices", "acts"),
    [
        # the crossover buys on 12; a 5 % stop sells on 11.3 while the averages still say hold
        ({"stop_loss_pct": "0.05"}, ["13", "11.3"], [None, "sell"]),
        # the trail from the high of 14 (13.3) sells on 13, which a 5 % stop from 12 (11.4) would not
        ({"trailing_stop_pct": "0.05"}, ["14", "13"], [None, "sell"]),
        ({"stop_loss_pct": "0.05"}, ["14", "13"], [None, None]),
        ({"take_profit_pct": "0.1"}, ["13", "13.2"], [None, "sell"]),
    ],
)
def test_a_paper_run_honours_its_exits_on_the_newest_close(paper_run, exits, prices, acts):
    coin, evaluate = paper_run(**exits)
    paper_bar(coin, 0, "12")
    assert evaluate() == "buy"
    seen = []
    for day, price in enumerate(prices, start=1):
        paper_bar(coin, day, price)
        seen.append(evaluate())
    assert seen == acts
    if "sell" in acts:
        buy, sell = Order.objects.get(side="buy"), Order.objects.get(side="sell")
        assert (sell.quantity, sell.filled_price) == (buy.quantity, Decimal(prices[-1]))


@pytest.mark.django_db
def test_a_paper_run_sells_on_the_next_bar_when_the_stop_was_reached_unseen(paper_run):
    coin, evaluate = paper_run(stop_loss_pct="0.05")
    paper_bar(coin, 0, "12")
    assert evaluate() == "buy"
    paper_bar(coin, 1, "13")
    paper_bar(coin, 2, "11.3")  # under the stop, but no sync acted on this bar
    paper_bar(coin, 3, "15")  # back up, and the averages still say hold
    assert evaluate() == "sell"
    paper_bar(coin, 4, "15.5")
    assert evaluate() is None  # flat: only a new entry signal buys again


@pytest.mark.parametrize(
    ("exits", "touch", "reason"),
    [
        ({"stop_loss": 0.05}, 11.4, "stop_loss"),  # 12 × 0.95 = 11.399999999999999 in floats
        ({"take_profit": 0.1}, 13.2, "take_profit"),  # 12 × 1.1 = 13.200000000000001
        ({"trailing_stop": 0.3}, 8.4, "trailing_stop"),
    ],
)
def test_a_close_exactly_at_a_level_reaches_it(exits, touch, reason):
    close = np.array([12.0, 12.0, touch, 12.0])
    entries, signal_exits, protect = _one_entry(close, **exits)
    _, _, trades, _ = backtest._all_in(
        close, entries, signal_exits, capital=1000, fee=0.0, slippage=0.0, protect=protect
    )
    assert [(t.exit_index, t.exit_reason) for t in trades] == [(2, reason)]
