"""Portfolio reads: valuation from holdings and latest quotes (never a replay of trades), performance, risk."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from cryptodesk.api.scoping import owner_scoped
from cryptodesk.money import CONTEXT, quantize
from market.selectors import is_stale

from .models import Alert, Holding, Notification, Order, Portfolio, PortfolioSnapshot, Trade, Watchlist

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
        quote = getattr(holding.coin, "quote", None)
        price = quote.current_price if quote else None
        cost = quantize(holding.quantity * holding.average_cost)
        value = quantize(holding.quantity * price) if price is not None else Decimal(0)
        unrealized = value - cost if price is not None else Decimal(0)
        pct = quantize(unrealized / cost * HUNDRED, places=4) if cost else None
        valuation.rows.append(HoldingRow(holding, price, quote.last_updated if quote else None, value, unrealized, pct))
        valuation.market_value += value
        valuation.unrealized_pnl += unrealized
    # every position ever held, closed ones too; summed in Python (SQLite's SUM is floating point)
    valuation.realized_pnl = sum(
        Holding.objects.filter(portfolio=portfolio).values_list("realized_pnl", flat=True), Decimal(0)
    )
    total = valuation.total_value
    for row in valuation.rows:
        row.allocation_pct = quantize(row.market_value / total * HUNDRED, places=4) if total else Decimal(0)
    yesterday = (
        PortfolioSnapshot.objects.filter(portfolio=portfolio, date__lt=timezone.now().date())
        .order_by("-date")
        .values_list("total_value", flat=True)
        .first()
    )
    if yesterday is not None:
        flows_today = PortfolioSnapshot.objects.filter(portfolio=portfolio, date=timezone.now().date()).values_list(
            "net_flow", flat=True
        ).first() or Decimal(0)
        valuation.day_change = total - yesterday - flows_today
    return valuation


# --- performance ----------------------------------------------------------------------------------


@dataclass
class Performance:
    days: int | None
    series: list[tuple[date, Decimal]]
    time_weighted_return: Decimal | None
    simple_return: Decimal | None
    net_flows: Decimal


def _daily_returns(snapshots: list[PortfolioSnapshot]) -> list[Decimal]:
    """r_t = (V_t - F_t) / V_{t-1} - 1: a day's deposits and withdrawals are not gains or losses."""
    returns = []
    with localcontext(CONTEXT):
        for previous, current in pairwise(snapshots):
            if previous.total_value > 0:
                returns.append((current.total_value - current.net_flow) / previous.total_value - 1)
    return returns


def _snapshots(portfolio: Portfolio, days: int | None, *, live: Valuation | None = None) -> list[PortfolioSnapshot]:
    qs = PortfolioSnapshot.objects.filter(portfolio=portfolio).order_by("date")
    if days is not None:
        qs = qs.filter(date__gte=timezone.now().date() - timedelta(days=days))
    snapshots = list(qs)
    if live is not None:
        today = timezone.now().date()
        flow = snapshots[-1].net_flow if snapshots and snapshots[-1].date == today else Decimal(0)
        point = PortfolioSnapshot(
            portfolio=portfolio,
            date=today,
            cash=live.cash,
            market_value=live.market_value,
            total_value=live.total_value,
            net_flow=flow,
        )
        snapshots = [s for s in snapshots if s.date != today] + [point]  # today at live prices
    return snapshots


def performance(portfolio: Portfolio, *, days: int | None) -> Performance:
    snapshots = _snapshots(portfolio, days, live=portfolio_valuation(portfolio))
    returns = _daily_returns(snapshots)
    twr = None
    if returns:
        with localcontext(CONTEXT):
            growth = Decimal(1)
            for r in returns:
                growth *= 1 + r
            twr = quantize(growth - 1, places=8)
    net_flows = sum((s.net_flow for s in snapshots[1:]), Decimal(0))
    simple = None
    if len(snapshots) >= 2:
        start, end = snapshots[0].total_value, snapshots[-1].total_value
        invested = start + sum((s.net_flow for s in snapshots[1:] if s.net_flow > 0), Decimal(0))
        if invested > 0:
            simple = quantize((end - start - net_flows) / invested, places=8)
    return Performance(
        days=days,
        series=[(s.date, s.total_value) for s in snapshots],
        time_weighted_return=twr,
        simple_return=simple,
        net_flows=net_flows,
    )


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


def _stdev(values: list[Decimal]) -> Decimal:
    with localcontext(CONTEXT):
        mean = sum(values) / len(values)
        variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        return variance.sqrt()


def risk(portfolio: Portfolio, *, days: int = 365) -> Risk:
    valuation = portfolio_valuation(portfolio)
    returns = _daily_returns(_snapshots(portfolio, days, live=valuation))
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
    return Risk(len(returns), volatility, drawdown, sharpe, var, largest, herfindahl)


# --- dashboard ------------------------------------------------------------------------------------


def open_orders(user, *, limit: int = 10) -> list[Order]:
    return list(orders_for_owner(user).filter(status=Order.Status.OPEN).select_related("coin")[:limit])


def orders_for_owner(user) -> QuerySet[Order]:
    return Order.objects.filter(portfolio__owner=user).select_related("portfolio")


def recent_trades(user, *, limit: int = 10) -> list[Trade]:
    return list(Trade.objects.filter(portfolio__owner=user).select_related("coin", "portfolio")[:limit])


def watchlists_with_quotes(user) -> list[Watchlist]:
    from market.models import Coin

    coins = Coin.objects.select_related("quote").order_by("market_cap_rank")
    return list(Watchlist.objects.filter(owner=user).prefetch_related(Prefetch("coins", queryset=coins)))
