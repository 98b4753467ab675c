"""Portfolio reads: valuation from holdings and latest quotes, value history rebuilt from trades and stored prices,
performance, risk."""

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, Overflow, localcontext
from itertools import pairwise
from typing import NamedTuple

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber, Trunc
from django.utils import timezone

from cryptodesk.api.scoping import owner_scoped
from cryptodesk.errors import FieldErrors
from cryptodesk.money import CONTEXT, MAX_AMOUNT, quantize
from market.models import Coin, PricePoint
from market.selectors import is_stale

from .models import Alert, CashTransfer, Holding, Notification, Order, Portfolio, PortfolioSnapshot, Trade, Watchlist

HUNDRED = Decimal(100)
DAYS_PER_YEAR = Decimal(365)
PERFORMANCE_DAYS = {"7": 7, "30": 30, "90": 90, "365": 365, "all": None}


@dataclass
class HoldingRow:
    holding: Holding
    price: Decimal | None
    price_updated: datetime | None
    market_value: Decimal
    unrealized_pnl: Decimal
    unrealized_pnl_pct: Decimal | None
    allocation_pct: Decimal = Decimal(0)

    @property
    def coin(self):
        return self.holding.coin

    @property
    def is_stale(self) -> bool:
        return is_stale(self.price_updated)


@dataclass
class Valuation:
    portfolio: Portfolio
    rows: list[HoldingRow] = field(default_factory=list)
    cash: Decimal = Decimal(0)
    market_value: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    day_change: Decimal | None = None

    @property
    def total_value(self) -> Decimal:
        with localcontext(CONTEXT):
            return self.cash + self.market_value


# --- querysets ------------------------------------------------------------------------------------


def portfolios_for(user) -> QuerySet[Portfolio]:
    return owner_scoped(Portfolio.objects.all(), user)


def orders_for(user) -> QuerySet[Order]:
    return owner_scoped(Order.objects.select_related("portfolio"), user, field="portfolio__owner")


def trades_for(user) -> QuerySet[Trade]:
    return owner_scoped(Trade.objects.select_related("coin"), user, field="portfolio__owner")


def watchlists_for(user) -> QuerySet[Watchlist]:
    return owner_scoped(Watchlist.objects.prefetch_related("coins"), user)


def alerts_for(user) -> QuerySet[Alert]:
    return owner_scoped(Alert.objects.select_related("coin"), user)


def notifications_for(user) -> QuerySet[Notification]:
    return Notification.objects.filter(user=user)


def unread_notification_count(user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


# --- valuation ------------------------------------------------------------------------------------


def _holdings(portfolio: Portfolio) -> list[Holding]:
    return list(
        Holding.objects.filter(portfolio=portfolio)
        .filter(quantity__gt=0)
        .select_related("coin", "coin__quote")
        .order_by("coin_id")
    )


def portfolio_valuation(portfolio: Portfolio, *, holdings: list[Holding] | None = None) -> Valuation:
    """One query for holdings with their coin and quote; realized P&L over every position ever held."""
    valuation = Valuation(portfolio=portfolio, cash=portfolio.cash)
    for holding in holdings if holdings is not None else _holdings(portfolio):
        _add_row(valuation, holding_row(holding))
    # every position ever held, closed ones too; summed in Python (SQLite's SUM is floating point)
    valuation.realized_pnl = money_sum(
        Holding.objects.filter(portfolio=portfolio).values_list("realized_pnl", flat=True)
    )
    _allocate(valuation)
    last_close = (
        PortfolioSnapshot.objects.filter(portfolio=portfolio, date__lt=timezone.now().date())
        .order_by("-date")
        .values_list("date", "total_value")
        .first()
    )
    if last_close is not None:
        flows = flows_since_close({portfolio.pk: last_close[0]})
        valuation.day_change = day_change(valuation, last_close[1], flows.get(portfolio.pk, Decimal(0)))
    return valuation


def day_change(valuation: Valuation, last_close: Decimal, flows: Decimal) -> Decimal:
    """Total value now - the last close - the transfers booked since it: a deposit is not a gain."""
    with localcontext(CONTEXT):
        return valuation.total_value - last_close - flows


def transfers(portfolio_ids_after: dict[int, date]) -> list[tuple[int, datetime, str, Decimal]]:
    """(portfolio id, created at, kind, amount) of each portfolio's transfers after its day, in one query.

    The only reader of transfers for values and returns: snapshots' `net_flow` may lag behind a transfer.
    """
    by_day: dict[date, list[int]] = defaultdict(list)
    for portfolio_id, after in portfolio_ids_after.items():
        by_day[after].append(portfolio_id)
    if not by_day:
        return []
    scope = Q()
    for after, ids in by_day.items():
        scope |= Q(portfolio_id__in=ids, created_at__date__gt=after)
    return list(CashTransfer.objects.filter(scope).values_list("portfolio_id", "created_at", "kind", "amount"))


def book_transfers(dates: list[date], rows) -> tuple[list[Decimal], list[Decimal]]:
    """(net flows, deposits) per point of `dates` (ascending): each (created at, kind, amount) is booked at the
    first point on or after its UTC day, so a day without a point passes its transfers on to the next one."""
    flows = [Decimal(0)] * len(dates)
    deposits = [Decimal(0)] * len(dates)
    with localcontext(CONTEXT):  # summed in Python: SQLite would add decimals in floating point
        for created_at, kind, amount in rows:
            index = bisect_left(dates, created_at.date())
            if index == len(dates):
                continue
            if kind == CashTransfer.Kind.DEPOSIT:
                flows[index] += amount
                deposits[index] += amount
            else:
                flows[index] -= amount
    return flows, deposits


def flows_since_close(last_close: dict[int, date]) -> dict[int, Decimal]:
    """Net transfers of each portfolio since its last close (up to now), in one query for them all."""
    today = timezone.now().date()
    by_portfolio: dict[int, list[tuple[datetime, str, Decimal]]] = defaultdict(list)
    for portfolio_id, created_at, kind, amount in transfers(last_close):
        by_portfolio[portfolio_id].append((created_at, kind, amount))
    return {
        portfolio_id: book_transfers([day, today], by_portfolio[portfolio_id])[0][1]
        for portfolio_id, day in last_close.items()
    }


def money_sum(values) -> Decimal:
    """Σ in the money context: the default 28 digits would round a sum of (38, 18) amounts."""
    total = Decimal(0)
    with localcontext(CONTEXT):
        for value in values:
            total += value
    return total


def _add_row(valuation: Valuation, row: HoldingRow) -> None:
    valuation.rows.append(row)
    with localcontext(CONTEXT):
        valuation.market_value += row.market_value
        valuation.unrealized_pnl += row.unrealized_pnl


def _allocate(valuation: Valuation) -> None:
    total = valuation.total_value
    with localcontext(CONTEXT):
        for row in valuation.rows:
            row.allocation_pct = quantize(row.market_value / total * HUNDRED, places=4) if total else Decimal(0)


# --- value history: rebuilt from trades, transfers and stored prices -------------------------------

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# one bucket size per range, so a chart's time axis is evenly spaced; hourly prices are kept for 90 days
HISTORY_INTERVALS: dict[int | None, timedelta] = {7: HOUR, 30: HOUR, 90: DAY, 365: DAY, None: DAY}
_TRUNC = {HOUR: "hour", DAY: "day"}


@dataclass(frozen=True)
class ValuePoint:
    time: datetime  # the bucket's start, UTC: where a chart draws it
    cash: Decimal  # at the bucket's close
    market_value: Decimal
    total_value: Decimal
    net_flow: Decimal = Decimal(0)  # deposits minus withdrawals made in the bucket: money put in, not a gain


@dataclass(frozen=True)
class History:
    days: int | None
    interval: timedelta
    points: list[ValuePoint]
    opened: bool = False  # the range reaches back to the (first) opening: worth 0 the bucket before its first


def _range_start(opened_at: datetime, *, days: int | None, interval: timedelta, now: datetime) -> datetime:
    """The first bucket of a range: its start, or the bucket of the opening if that is later."""
    first = bucket_start(opened_at, interval)
    if days is not None:
        first = max(first, bucket_start(now - timedelta(days=days), interval))
    return first


def bucket_start(moment: datetime, interval: timedelta) -> datetime:
    """The UTC hour or day holding `moment`."""
    moment = moment.astimezone(UTC)
    if interval == DAY:
        return datetime.combine(moment.date(), time.min, tzinfo=UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _bucket_prices(coin_ids: set[str], *, first: datetime, interval: timedelta, until: datetime) -> tuple[dict, dict]:
    """({coin: the last price stored before `first`}, {(coin, bucket start): the last price stored in that bucket}),
    in two queries whatever the number of buckets and coins."""
    if not coin_ids:
        return {}, {}
    before = Coin.objects.filter(pk__in=coin_ids).annotate(
        price=Subquery(PricePoint.objects.filter(coin=OuterRef("pk"), ts__lt=first).order_by("-ts").values("price")[:1])
    )
    opening = {coin_id: price for coin_id, price in before.values_list("pk", "price") if price is not None}
    bucket = Trunc("ts", _TRUNC[interval], tzinfo=UTC)
    last_in_bucket = (
        PricePoint.objects.filter(coin_id__in=coin_ids, ts__gte=first, ts__lt=until)
        .annotate(
            bucket=bucket,
            rank=Window(RowNumber(), partition_by=[F("coin_id"), bucket], order_by=[F("ts").desc(), F("id").desc()]),
        )
        .filter(rank=1)
        .values_list("coin_id", "bucket", "price")
    )
    return opening, {(coin_id, start.astimezone(UTC)): price for coin_id, start, price in last_in_bucket}


def rebuilt_values(
    portfolio: Portfolio, *, first: datetime, interval: timedelta, now: datetime, live: Valuation
) -> list[ValuePoint]:
    """One portfolio's values, bucket by bucket: `rebuilt_values_for` with its live valuation alone."""
    return rebuilt_values_for([live], first=first, interval=interval, now=now)[portfolio.pk]


def rebuilt_values_for(
    valuations: list[Valuation], *, first: datetime, interval: timedelta, now: datetime
) -> dict[int, list[ValuePoint]]:
    """{portfolio id: its value at the close of each bucket (an hour or a UTC day)} from the bucket starting at
    `first` to the one holding `now`, which is the portfolio's live valuation. Trades and transfers are walked in
    time order; each coin is valued at the last price stored at or before the bucket's close (the portfolio's last
    trade price of it while none is stored), as the live valuation rounds it; a bucket before a portfolio opened
    is worth 0. At most four queries (trades, transfers, two for prices), whatever the number of portfolios,
    buckets, trades and coins."""
    last = bucket_start(now, interval)
    starts = [first + n * interval for n in range((last - first) // interval + 1)] if first <= last else [last]
    ids = [valuation.portfolio.pk for valuation in valuations]
    trades = list(
        Trade.objects.filter(portfolio_id__in=ids, executed_at__lt=last)
        .order_by("executed_at", "id")
        .values_list("portfolio_id", "executed_at", "coin_id", "side", "quantity", "notional", "fee", "price")
    )
    # every transfer, those of the open bucket too: the live value holds them, its net flow counts them
    moves = list(
        CashTransfer.objects.filter(portfolio_id__in=ids)
        .order_by("created_at", "id")
        .values_list("portfolio_id", "created_at", "kind", "amount")
    )
    coin_ids = {coin_id for _, _, coin_id, *_ in trades}
    opening, in_bucket = _bucket_prices(coin_ids, first=starts[0], interval=interval, until=last)
    prices: dict[str, Decimal] = dict(opening)
    traded_at: dict[int, dict[str, Decimal]] = {pk: {} for pk in ids}  # each coin's latest trade price
    quantities: dict[int, dict[str, Decimal]] = {pk: defaultdict(Decimal) for pk in ids}
    cash = dict.fromkeys(ids, Decimal(0))
    points: dict[int, list[ValuePoint]] = {pk: [] for pk in ids}
    next_trade = next_move = 0
    with localcontext(CONTEXT):
        for start in starts[:-1]:
            close = start + interval
            flows: dict[int, Decimal] = defaultdict(Decimal)
            while next_move < len(moves) and moves[next_move][1] < close:
                pk, created_at, kind, amount = moves[next_move]
                signed = amount if kind == CashTransfer.Kind.DEPOSIT else -amount
                cash[pk] += signed
                if created_at >= start:  # one made before the range is in the first value, not its flow
                    flows[pk] += signed
                next_move += 1
            while next_trade < len(trades) and trades[next_trade][1] < close:
                pk, _, coin_id, side, quantity, notional, fee, price = trades[next_trade]
                if side == Order.Side.BUY:
                    quantities[pk][coin_id] += quantity
                    cash[pk] -= notional + fee
                else:
                    quantities[pk][coin_id] -= quantity
                    cash[pk] += notional - fee
                traded_at[pk][coin_id] = price
                next_trade += 1
            for coin_id in coin_ids:  # held or not yet: a coin bought later starts from its latest price
                price = in_bucket.get((coin_id, start))
                if price is not None:
                    prices[coin_id] = price
            for pk in ids:
                market_value = Decimal(0)
                for coin_id, quantity in quantities[pk].items():
                    price = prices.get(coin_id, traded_at[pk].get(coin_id))
                    if quantity and price is not None:
                        market_value += quantize(quantity * price)
                points[pk].append(ValuePoint(start, cash[pk], market_value, cash[pk] + market_value, flows[pk]))
        flows = defaultdict(Decimal)
        for pk, created_at, kind, amount in moves[next_move:]:
            if created_at >= starts[-1]:
                flows[pk] += amount if kind == CashTransfer.Kind.DEPOSIT else -amount
    for valuation in valuations:
        pk = valuation.portfolio.pk
        points[pk].append(
            ValuePoint(starts[-1], valuation.cash, valuation.market_value, valuation.total_value, flows[pk])
        )
    return points


def value_history(
    portfolio: Portfolio, *, days: int | None, now: datetime | None = None, live: Valuation | None = None
) -> History:
    """The value chart of a range: one point per bucket (HISTORY_INTERVALS), from the range's start or the bucket
    in which the portfolio opened, whichever is later, to the live value now."""
    now = now or timezone.now()
    interval = HISTORY_INTERVALS[days]
    first = _range_start(portfolio.created_at, days=days, interval=interval, now=now)
    live = live or portfolio_valuation(portfolio)
    points = rebuilt_values(portfolio, first=first, interval=interval, now=now, live=live)
    return History(days, interval, points, opened=first == bucket_start(portfolio.created_at, interval))


def combined_history(valuations: list[Valuation], *, days: int | None, now: datetime | None = None) -> History:
    """The value of all the portfolios of `valuations` together (the dashboard's chart): each rebuilt on the buckets
    of its own chart and summed bucket by bucket, from the range's start or the bucket the first of them opened
    in; a portfolio counts 0 before it opened, and the last point is the sum of the live valuations. The same
    queries as one portfolio's history, whatever their number."""
    now = now or timezone.now()
    interval = HISTORY_INTERVALS[days]
    if not valuations:
        return History(days, interval, [])
    opened_at = min(valuation.portfolio.created_at for valuation in valuations)
    first = _range_start(opened_at, days=days, interval=interval, now=now)
    by_portfolio = rebuilt_values_for(valuations, first=first, interval=interval, now=now)
    points = [
        ValuePoint(
            bucket[0].time,
            money_sum(point.cash for point in bucket),
            money_sum(point.market_value for point in bucket),
            money_sum(point.total_value for point in bucket),
            money_sum(point.net_flow for point in bucket),
        )
        for bucket in zip(*by_portfolio.values(), strict=True)
    ]
    return History(days, interval, points, opened=first == bucket_start(opened_at, interval))


def history_time_weighted_return(history: History) -> Decimal | None:
    """Π (1 + r) - 1 over the buckets, each bucket's transfers money put in, not gains; a range that reaches back
    to the opening starts from 0 the bucket before it, so the first bucket is measured against the cash put in."""
    series = [(point.time, point.total_value, point.net_flow) for point in history.points]
    if history.opened and series:
        series.insert(0, (series[0][0] - history.interval, Decimal(0), Decimal(0)))
    return series_time_weighted_return(series)


# --- performance ----------------------------------------------------------------------------------


@dataclass
class Performance:
    days: int | None
    series: list[tuple[date, Decimal]]
    time_weighted_return: Decimal | None
    simple_return: Decimal | None
    net_flows: Decimal
    benchmark: "Benchmark | None" = None


class Point(NamedTuple):
    """A closing value (today: live) and the transfers booked since the previous point."""

    date: date
    total_value: Decimal
    net_flow: Decimal  # deposits minus withdrawals
    deposits: Decimal  # deposits alone (the capital put in)
    is_opening: bool = False  # the 0 before the portfolio existed


def daily_returns(series) -> list[Decimal]:
    """r_t = (V_t - F_t) / V_{t-1} - 1 over (date, value, flow, ...) points; transfers are not gains or losses.

    The first funded day (nothing before it) is measured against the money put in: r = V_t / F_t - 1.
    """
    return [r for _, r in returns_by_point(series)]


def returns_by_point(series) -> list[tuple[int, Decimal]]:
    """(index of the point, r_t) for each point of `series` that has a daily return (see `daily_returns`)."""
    returns = []
    with localcontext(CONTEXT):
        for index, (previous, current) in enumerate(pairwise(series), start=1):
            value, flow = current[1], current[2]
            if previous[1] > 0:
                returns.append((index, (value - flow) / previous[1] - 1))
            elif flow > 0:
                returns.append((index, value / flow - 1))
    return returns


def value_series(portfolio: Portfolio, days: int | None, *, live: Valuation) -> list[Point]:
    """The closing value of every day in the range, today at live prices: the day's snapshot where one was taken,
    else rebuilt from trades and stored prices (`rebuilt_values`); transfers read from CashTransfer rows (a
    deposit made since the last snapshot is never a gain). A range reaching back to the portfolio's creation
    opens with a value of 0 the day before, so the starting cash counts as money put in."""
    now = timezone.now()
    today = now.date()
    start = None if days is None else today - timedelta(days=days)
    snapshots = PortfolioSnapshot.objects.filter(portfolio=portfolio, date__lt=today)
    if start is not None:
        snapshots = snapshots.filter(date__gte=start)
    closes = dict(snapshots.values_list("date", "total_value"))
    created = portfolio.created_at.date()
    first = min(created, *closes) if closes else created
    if start is not None:
        first = max(first, start)
    first = min(first, today)
    rebuilt = rebuilt_values(
        portfolio, first=datetime.combine(first, time.min, tzinfo=UTC), interval=DAY, now=now, live=live
    )
    values = [(point.time.date(), closes.get(point.time.date(), point.total_value)) for point in rebuilt]
    values[-1] = (today, live.total_value)
    if start is None or created >= start:  # the range reaches back to the creation
        values.insert(0, (min(created, values[0][0]) - timedelta(days=1), Decimal(0)))
    dates = [day for day, _ in values]
    rows = [row[1:] for row in transfers({portfolio.pk: dates[0]})]
    flows, deposits = book_transfers(dates, rows)
    opened = start is None or created >= start
    return [
        Point(day, value, flows[i], deposits[i], is_opening=opened and i == 0) for i, (day, value) in enumerate(values)
    ]


def performance(portfolio: Portfolio, *, days: int | None, benchmark: str | None = None) -> Performance:
    """Returns and the value series of a range; with `benchmark` (a coin id, "" for bitcoin) the same range held
    in that coin and the figures against it (`benchmark_performance`)."""
    points = value_series(portfolio, days, live=portfolio_valuation(portfolio))
    twr = series_time_weighted_return(points)
    net_flows = money_sum(point.net_flow for point in points[1:])
    simple = None
    if len(points) >= 2:
        start, end = points[0].total_value, points[-1].total_value
        invested = start + money_sum(point.deposits for point in points[1:])  # the capital put in
        if invested > 0:
            with localcontext(CONTEXT):
                simple = quantize((end - start - net_flows) / invested, places=8)
    return Performance(
        days=days,
        series=[(point.date, point.total_value) for point in points if not point.is_opening],
        time_weighted_return=twr,
        simple_return=simple,
        net_flows=net_flows,
        benchmark=None if benchmark is None else benchmark_performance(points, coin_id=benchmark or DEFAULT_BENCHMARK),
    )


# --- against a benchmark coin ---------------------------------------------------------------------

DEFAULT_BENCHMARK = "bitcoin"
RELATIVE_FIGURES = ("alpha", "beta", "tracking_error", "information_ratio")
MIN_VARIANCE = Decimal("1e-30")  # empyrical's floor: a benchmark that barely moves has no beta


@dataclass
class Benchmark:
    coin: Coin
    observations: int  # the daily returns of the portfolio, each with the coin's on the same day
    time_weighted_return: Decimal | None
    series: list[tuple[date, Decimal]]  # the portfolio's money held in the coin instead, at each day's close
    alpha: Decimal | None = None
    beta: Decimal | None = None
    tracking_error: Decimal | None = None
    information_ratio: Decimal | None = None
    missing: dict[str, str] = field(default_factory=dict)  # a figure left out (None) → why


def relative_figures(returns: list[Decimal], benchmark: list[Decimal]) -> dict[str, Decimal | None]:
    """Alpha, beta, tracking error and information ratio of aligned daily returns r and b, unrounded, as empyrical
    defines them with 365 periods a year and a risk-free rate of 0: beta = Σ (b - b̄) r / Σ (b - b̄)², alpha =
    (1 + mean(r - beta b))^365 - 1 (the regression's intercept, compounded), tracking error = the sample stdev of
    a = r - b × √365, information ratio = mean(a) / stdev(a) × √365. None where undefined."""
    figures: dict[str, Decimal | None] = dict.fromkeys(RELATIVE_FIGURES)
    count = len(returns)
    if count < 2:
        return figures
    with localcontext(CONTEXT):
        centred = [b - sum(benchmark) / count for b in benchmark]
        variance = sum(x * x for x in centred) / count
        if variance >= MIN_VARIANCE:
            beta = sum(x * r for x, r in zip(centred, returns, strict=True)) / count / variance
            intercept = sum(r - beta * b for r, b in zip(returns, benchmark, strict=True)) / count
            figures["beta"] = beta
            try:
                figures["alpha"] = (1 + intercept) ** DAYS_PER_YEAR - 1
            except Overflow:
                pass  # beyond any number: left out, as too large
        active = [r - b for r, b in zip(returns, benchmark, strict=True)]
        deviation = _stdev(active)
        figures["tracking_error"] = deviation * DAYS_PER_YEAR.sqrt()
        if deviation:
            figures["information_ratio"] = sum(active) / count / deviation * DAYS_PER_YEAR.sqrt()
    return figures


def benchmark_coins() -> QuerySet[Coin]:
    """The coins a portfolio can be compared with: those with stored prices, biggest first."""
    return (
        Coin.objects.filter(Exists(PricePoint.objects.filter(coin=OuterRef("pk"))))
        .order_by(F("market_cap_rank").asc(nulls_last=True), "id")
        .only("id", "name", "symbol")
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _daily_closes(coin: Coin, dates: list[date]) -> list[Decimal | None]:
    """The coin's price at the close of each day of `dates` (ascending, today last): the last price stored on or
    before that day, carried over days without one (None before the first); today the live quote where there is
    one, as the portfolio's live value. Two queries."""
    opening, in_day = _bucket_prices(
        {coin.pk}, first=_day_start(dates[0]), interval=DAY, until=_day_start(dates[-1]) + DAY
    )
    price = opening.get(coin.pk)
    closes = []
    for day in dates:
        price = in_day.get((coin.pk, _day_start(day)), price)
        closes.append(price)
    quote = getattr(coin, "quote", None)
    if quote is not None and quote.current_price is not None:
        closes[-1] = quote.current_price
    return closes


def _day_text(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _no_history(coin: Coin, dates: list[date], closes: list[Decimal | None]) -> str:
    first = next((day for day, price in zip(dates[:-1], closes, strict=False) if price is not None), None)
    if first is None:
        return f"No stored {coin.name} price over this range: the comparison appears once its history is synced."
    return (
        f"No stored {coin.name} price on {_day_text(dates[0])}, where this range starts: its stored history begins "
        f"on {_day_text(first)}. Choose a shorter range."
    )


def _benchmark_missing(result: Benchmark, *, has_money: bool, today: date) -> dict[str, str]:
    """Why each figure of `result` that is None is missing."""
    missing = {}
    needed = {"benchmark.twr": 1, **dict.fromkeys(RELATIVE_FIGURES, 2)}
    values = {
        "benchmark.twr": result.time_weighted_return,
        **{name: getattr(result, name) for name in RELATIVE_FIGURES},
    }
    for name, count in needed.items():
        if values[name] is not None:
            continue
        if result.observations < count:
            more = count - result.observations
            when = today + timedelta(days=more)
            missing[name] = f"Needs at least {_returns(count)}, each with {result.coin.name}'s on the same day; " + (
                f"{more} more after {more} more day{'s' if more != 1 else ''} of history (on {_day_text(when)})."
                if has_money
                else "deposit cash first."
            )
        elif name in {"alpha", "beta"} and result.beta is None:
            missing[name] = f"{result.coin.name}'s price did not move over this range: beta divides by its variance."
        elif name == "information_ratio":
            missing[name] = (
                f"The portfolio moved exactly with {result.coin.name} (0 tracking error): there is nothing to divide by."
            )
        else:
            missing[name] = "Too large to show: annualising so few days of returns makes it meaningless."
    return missing


def benchmark_performance(points: list[Point], *, coin_id: str) -> Benchmark:
    """The range of `points` against a coin: each daily return of the portfolio beside the coin's over the same
    day (its close against the previous day's, stored prices; today live), the coin's time-weighted return over
    those days, the figures of `relative_figures` (rounded to 8 places), and the value the portfolio's money would
    have had in the coin: the same deposits and withdrawals, on the same days. A coin without a stored price at
    the start of the range has no figures (`missing` says why). Three queries whatever the range."""
    coin = Coin.objects.select_related("quote").filter(pk=coin_id).first()
    if coin is None:
        raise FieldErrors({"benchmark": [f"No coin {coin_id!r}: use a coin id such as {DEFAULT_BENCHMARK!r}."]})
    dates = [point.date for point in points]
    closes = _daily_closes(coin, dates)
    aligned = returns_by_point(points)
    result = Benchmark(coin=coin, observations=len(aligned), time_weighted_return=None, series=[])
    if any(closes[index - 1] is None for index, _ in aligned):  # carried forward: only the start can lack one
        result.missing = dict.fromkeys(["benchmark.twr", *RELATIVE_FIGURES], _no_history(coin, dates, closes))
        return result
    coin_returns: dict[int, Decimal] = {}
    values = [points[0].total_value]
    growth = Decimal(1)
    with localcontext(CONTEXT):
        for index, _ in aligned:
            coin_returns[index] = closes[index] / closes[index - 1] - 1
            growth *= 1 + coin_returns[index]
        for index, point in enumerate(points[1:], start=1):
            previous, flow = values[-1], point.net_flow
            if index not in coin_returns:  # no return for the portfolio that day: none for the coin either
                values.append(max(previous + flow, Decimal(0)))
            elif previous > 0:  # the flow at the day's close, as in the portfolio's daily return
                values.append(max(quantize(previous * (1 + coin_returns[index])) + flow, Decimal(0)))
            else:  # the first funded day: the money put in, held over the day
                values.append(quantize(max(flow, Decimal(0)) * (1 + coin_returns[index])))
    result.series = [(point.date, value) for point, value in zip(points, values, strict=True) if not point.is_opening]
    if aligned:
        result.time_weighted_return = quantize(growth - 1, places=8)
    figures = relative_figures([r for _, r in aligned], [coin_returns[index] for index, _ in aligned])
    for name, value in figures.items():
        if value is not None and abs(value) < MAX_AMOUNT:
            setattr(result, name, quantize(value, places=8))
    has_money = any(point.total_value > 0 or point.net_flow > 0 for point in points)
    result.missing = _benchmark_missing(result, has_money=has_money, today=dates[-1])
    return result


# --- risk -----------------------------------------------------------------------------------------


@dataclass
class Risk:
    observations: int
    volatility: Decimal | None
    max_drawdown: Decimal | None
    sharpe: Decimal | None
    value_at_risk_95: Decimal | None
    largest_holding_pct: Decimal | None
    herfindahl_index: Decimal | None
    missing: dict[str, str] = field(default_factory=dict)  # a figure left out (None) → why, and when it appears


# the daily returns each figure needs (docs/metrics.md): one more arrives with each day's close
RETURNS_NEEDED = {"volatility": 2, "sharpe": 2, "max_drawdown": 1, "value_at_risk_95": 1}
NO_COINS = "No coins held: it appears with your first buy."


def _returns(count: int) -> str:
    return f"{count} daily return{'s' if count != 1 else ''}"


def _why_missing(risk: Risk, *, total_value: Decimal, today: date) -> dict[str, str]:
    """Why each figure of `risk` that is None is missing, and when it will appear."""
    missing = {}
    for name, needed in RETURNS_NEEDED.items():
        if getattr(risk, name) is not None:
            continue
        if risk.observations >= needed:  # only Sharpe: a deviation of 0
            missing[name] = "The value has not moved (0 volatility): there is no risk to divide by until it does."
        elif not risk.observations and total_value <= 0:
            missing[name] = (
                f"Needs money in the portfolio: deposit cash, then each day adds a daily return (at least {needed} "
                "needed)."
            )
        else:
            more = needed - risk.observations
            when = today + timedelta(days=more)
            missing[name] = (
                f"Needs at least {_returns(needed)}; {more} more after {more} more day{'s' if more != 1 else ''} "
                f"of history (on {when:%b} {when.day}, {when.year})."
            )
    for name in ("largest_holding_pct", "herfindahl_index"):
        if getattr(risk, name) is None:
            missing[name] = NO_COINS
    return missing


def _stdev(values: list[Decimal]) -> Decimal:
    with localcontext(CONTEXT):
        mean = sum(values) / len(values)
        variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return variance.sqrt()


def risk(portfolio: Portfolio, *, days: int = 365) -> Risk:
    valuation = portfolio_valuation(portfolio)
    returns = daily_returns(value_series(portfolio, days, live=valuation))
    volatility = sharpe = var = drawdown = None
    with localcontext(CONTEXT):
        if len(returns) >= 2:
            deviation = _stdev(returns)
            mean = sum(returns) / len(returns)
            volatility = quantize(deviation * DAYS_PER_YEAR.sqrt(), places=8)
            sharpe = quantize(mean / deviation * DAYS_PER_YEAR.sqrt(), places=8) if deviation else None
        if returns:
            ordered = sorted(returns)
            worst = ordered[int(len(ordered) * Decimal("0.05"))]  # the 5th percentile day (historical)
            var = quantize(max(Decimal(0), -worst) * valuation.total_value, places=2)
            index, peak, deepest = Decimal(1), Decimal(1), Decimal(0)
            for r in returns:
                index *= 1 + r
                peak = max(peak, index)
                deepest = max(deepest, (peak - index) / peak)
            drawdown = quantize(deepest, places=8)
        weights = (
            [row.market_value / valuation.market_value for row in valuation.rows] if valuation.market_value else []
        )
        largest = quantize(max(row.allocation_pct for row in valuation.rows), places=4) if valuation.rows else None
        herfindahl = quantize(sum(w * w for w in weights), places=8) if weights else None
    result = Risk(len(returns), volatility, drawdown, sharpe, var, largest, herfindahl)
    result.missing = _why_missing(result, total_value=valuation.total_value, today=timezone.now().date())
    return result


# --- batched reads: every portfolio of a user at once (dashboard, portfolio list) -------------------


def holding_row(holding: Holding) -> HoldingRow:
    """Price, value and unrealized P&L of one holding read with its coin and quote."""
    quote = getattr(holding.coin, "quote", None)
    price = quote.current_price if quote else None
    with localcontext(CONTEXT):
        cost = quantize(holding.quantity * holding.average_cost)
        value = quantize(holding.quantity * price) if price is not None else Decimal(0)
        unrealized = value - cost if price is not None else Decimal(0)
        pct = quantize(unrealized / cost * HUNDRED, places=4) if cost else None
    return HoldingRow(holding, price, quote.last_updated if quote else None, value, unrealized, pct)


def cash_and_values(portfolio_ids) -> list[Valuation]:
    """Cash and market value of the given portfolios, in two queries whatever their number (no P&L split, no day
    change): what the live socket sends after a price write."""
    valuations = {
        portfolio.pk: Valuation(portfolio=portfolio, cash=portfolio.cash)
        for portfolio in Portfolio.objects.filter(pk__in=list(portfolio_ids)).only("pk", "owner_id", "cash")
    }
    holdings = Holding.objects.filter(portfolio_id__in=list(valuations), quantity__gt=0).select_related(
        "coin", "coin__quote"
    )
    for holding in holdings.order_by("portfolio_id", "coin_id"):
        _add_row(valuations[holding.portfolio_id], holding_row(holding))
    return list(valuations.values())


def valuations_for(user) -> list[Valuation]:
    """Every portfolio of the user, valued in three queries whatever their number: portfolios with their last
    close, holdings, and the transfers since each close."""
    today = timezone.now().date()
    closes = PortfolioSnapshot.objects.filter(portfolio=OuterRef("pk"), date__lt=today).order_by("-date")
    portfolios = list(
        Portfolio.objects.filter(owner=user).annotate(
            previous_total=Subquery(closes.values("total_value")[:1]),
            previous_date=Subquery(closes.values("date")[:1]),
        )
    )
    flows = flows_since_close({p.pk: p.previous_date for p in portfolios if p.previous_date is not None})
    holdings: dict[int, list[Holding]] = defaultdict(list)
    for holding in (
        Holding.objects.filter(portfolio__owner=user).select_related("coin", "coin__quote").order_by("coin_id")
    ):
        holdings[holding.portfolio_id].append(holding)
    valuations = []
    for portfolio in portfolios:
        valuation = Valuation(portfolio=portfolio, cash=portfolio.cash)
        for holding in holdings[portfolio.pk]:
            with localcontext(CONTEXT):
                valuation.realized_pnl += holding.realized_pnl
            if holding.quantity > 0:
                _add_row(valuation, holding_row(holding))
        _allocate(valuation)
        if portfolio.previous_total is not None:
            valuation.day_change = day_change(valuation, portfolio.previous_total, flows[portfolio.pk])
        valuations.append(valuation)
    return valuations


@dataclass
class Totals:
    cash: Decimal = Decimal(0)
    market_value: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    day_change: Decimal | None = None

    @property
    def total_value(self) -> Decimal:
        with localcontext(CONTEXT):
            return self.cash + self.market_value

    @property
    def day_change_pct(self) -> Decimal | None:
        """Today's change as a share of yesterday's value (transfers excluded)."""
        if self.day_change is None:
            return None
        with localcontext(CONTEXT):
            base = self.total_value - self.day_change
            return quantize(self.day_change / base * HUNDRED, places=4) if base > 0 else None


def totals(valuations: list[Valuation]) -> Totals:
    totals = Totals()
    with localcontext(CONTEXT):
        for valuation in valuations:
            totals.cash += valuation.cash
            totals.market_value += valuation.market_value
            totals.unrealized_pnl += valuation.unrealized_pnl
            totals.realized_pnl += valuation.realized_pnl
            if valuation.day_change is not None:
                totals.day_change = (totals.day_change or Decimal(0)) + valuation.day_change
    return totals


@dataclass
class Position:
    """One coin across all of the user's portfolios."""

    coin: Coin
    quantity: Decimal = Decimal(0)
    market_value: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    allocation_pct: Decimal = Decimal(0)

    @property
    def unrealized_pnl(self) -> Decimal:
        with localcontext(CONTEXT):
            return self.market_value - self.cost

    @property
    def unrealized_pnl_pct(self) -> Decimal | None:
        with localcontext(CONTEXT):
            return quantize(self.unrealized_pnl / self.cost * HUNDRED, places=4) if self.cost else None


def top_positions(valuations: list[Valuation], total: Decimal, *, limit: int) -> list[Position]:
    positions: dict[str, Position] = {}
    with localcontext(CONTEXT):
        for valuation in valuations:
            for row in valuation.rows:
                position = positions.setdefault(row.coin.pk, Position(coin=row.coin))
                position.quantity += row.holding.quantity
                position.market_value += row.market_value
                position.cost += row.market_value - row.unrealized_pnl
        for position in positions.values():
            position.allocation_pct = (
                quantize(position.market_value / total * HUNDRED, places=4) if total else Decimal(0)
            )
    return sorted(positions.values(), key=lambda p: (-p.market_value, p.coin.pk))[:limit]


def watchlist_quotes(user) -> list[tuple[Watchlist, list[Coin]]]:
    """The user's watched coins with their quotes, grouped by watchlist, in one query."""
    through = Watchlist.coins.through.objects.filter(watchlist__owner=user).select_related("watchlist", "coin__quote")
    grouped: dict[int, tuple[Watchlist, list[Coin]]] = {}
    for entry in through.order_by(
        "watchlist__created_at", "watchlist_id", F("coin__market_cap_rank").asc(nulls_last=True), "coin_id"
    ):
        grouped.setdefault(entry.watchlist_id, (entry.watchlist, []))[1].append(entry.coin)
    return list(grouped.values())


def series_time_weighted_return(series) -> Decimal | None:
    """Π (1 + r_t) - 1 over (date, value, flow, ...) points: transfers in and out are not gains or losses."""
    returns = daily_returns(series)
    if not returns:
        return None
    growth = Decimal(1)
    with localcontext(CONTEXT):
        for r in returns:
            growth *= 1 + r
    return quantize(growth - 1, places=8)


# --- dashboard ------------------------------------------------------------------------------------


def open_orders(user, *, limit: int = 10) -> list[Order]:
    return list(orders_for_owner(user).filter(status=Order.Status.OPEN).select_related("coin", "coin__quote")[:limit])


def orders_for_owner(user) -> QuerySet[Order]:
    return Order.objects.filter(portfolio__owner=user).select_related("portfolio")


def trades_for_owner(user) -> QuerySet[Trade]:
    """The user's own trades, newest first, with what a trades table shows."""
    return (
        Trade.objects.filter(portfolio__owner=user).select_related("coin", "portfolio").order_by("-executed_at", "-id")
    )


def recent_trades(user, *, limit: int = 10) -> list[Trade]:
    return list(Trade.objects.filter(portfolio__owner=user).select_related("coin", "portfolio")[:limit])


def watchlists_with_quotes(user) -> list[Watchlist]:
    from market.models import Coin

    coins = Coin.objects.select_related("quote").order_by("market_cap_rank")
    return list(Watchlist.objects.filter(owner=user).prefetch_related(Prefetch("coins", queryset=coins)))
