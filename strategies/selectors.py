"""Strategy reads: your own, and everyone's published ones; backtests and paper runs are their runner's."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from cryptodesk.timestamps import to_ms
from market.models import PricePoint

from .engine import backtest as engine
from .engine import convert
from .models import Backtest, PaperRun, Strategy


def readable_strategies(user) -> QuerySet[Strategy]:
    """Yours, plus every published one (operators read all); an archived (deleted) strategy is nobody's."""
    qs = Strategy.objects.select_related("owner", "coin").filter(archived_at__isnull=True)
    if user.is_staff:
        return qs
    return qs.filter(Q(owner=user) | Q(visibility=Strategy.Visibility.PUBLISHED))


def own_strategies(user) -> QuerySet[Strategy]:
    return Strategy.objects.select_related("owner", "coin").filter(owner=user, archived_at__isnull=True)


def filtered_strategies(
    user, *, writable: bool = False, mine: bool = False, kind: str | None = None, coin: str | None = None
) -> QuerySet[Strategy]:
    """The API's strategies: readable ones (own ones for a change), narrowed by owner, kind, coin id or symbol."""
    qs = own_strategies(user) if writable else readable_strategies(user)
    if mine:
        qs = qs.filter(owner=user)
    if kind:
        qs = qs.filter(kind=kind)
    if coin:
        qs = qs.filter(Q(coin_id=coin) | Q(coin__symbol__iexact=coin))
    return qs


def page_strategies(user) -> QuerySet[Strategy]:
    """What the pages show: the user's own strategies and everyone's published ones (operators too)."""
    return readable_strategies(user).filter(Q(owner=user) | Q(visibility=Strategy.Visibility.PUBLISHED))


def is_page_readable(user, strategy_id) -> bool:
    return strategy_id is not None and page_strategies(user).filter(pk=strategy_id).exists()


def readable_clone_source(user, strategy: Strategy) -> Strategy | None:
    """The strategy this one was cloned from, if the user may still read it."""
    if strategy.cloned_from_id is None:
        return None
    return page_strategies(user).filter(pk=strategy.cloned_from_id).first()


def with_last_backtest(strategies: QuerySet[Strategy], user, *, limit: int | None = None) -> list[Strategy]:
    """Each strategy with `last_backtest` (the user's newest successful run of it, metrics only, or None) and
    `runs` (how many times the user ran it): two queries whatever the number of strategies."""
    newest = (
        Backtest.objects.filter(strategy=OuterRef("pk"), owner=user, status=Backtest.Status.SUCCEEDED)
        .order_by("-created_at")
        .values("pk")[:1]
    )
    annotated = strategies.annotate(
        last_backtest_id=Subquery(newest), runs=Count("backtests", filter=Q(backtests__owner=user))
    ).select_related("coin")
    rows = list(annotated[:limit] if limit is not None else annotated)
    wanted = [row.last_backtest_id for row in rows if row.last_backtest_id]
    found = {backtest.pk: backtest for backtest in Backtest.objects.filter(pk__in=wanted).only("pk", "metrics")}
    for row in rows:
        row.last_backtest = found.get(row.last_backtest_id)
    return rows


def strategy_list(user, *, published_limit: int) -> dict[str, list[Strategy]]:
    """The list page: `mine` and up to `published_limit` of `published` (others'), each `with_last_backtest`."""
    published = page_strategies(user).filter(visibility=Strategy.Visibility.PUBLISHED).exclude(owner=user)
    return {
        "mine": with_last_backtest(own_strategies(user), user),
        "published": with_last_backtest(published, user, limit=published_limit),
    }


@dataclass(frozen=True)
class Coverage:
    """A coin's stored history from some moment on, as bars of one timeframe see it."""

    first_stored: datetime  # the first stored point from that moment on
    first: datetime  # the first point of the newest stretch at the timeframe's resolution (engine.covered_from)
    last: datetime  # the newest stored point

    @property
    def first_whole_day(self) -> date:
        """The first UTC day covered from its midnight on: where a range picked in whole days may start."""
        day = self.first.date()
        return day if self.first.time() == time.min else day + timedelta(days=1)

    def mixes_bar_sizes(self, end: datetime) -> bool:
        """True when points before `first`, too far apart to be bars of the timeframe, fall before `end`."""
        return self.first_stored < self.first and self.first_stored <= end


def history_coverage(coin_id: str, timeframe: str, *, since: datetime) -> Coverage | None:
    """What the stored history of a coin covers at a timeframe, from `since` on (None: nothing stored): one query
    of timestamps, at most a year of retained points."""
    stamps = list(PricePoint.objects.filter(coin_id=coin_id, ts__gte=since).order_by("ts").values_list("ts", flat=True))
    if not stamps:
        return None
    index = engine.covered_from(convert.to_times([to_ms(ts) for ts in stamps]), timeframe)
    return Coverage(
        first_stored=stamps[0].astimezone(UTC), first=stamps[index].astimezone(UTC), last=stamps[-1].astimezone(UTC)
    )


def backtests_for(user) -> QuerySet[Backtest]:
    qs = Backtest.objects.select_related("strategy")
    return qs if user.is_staff else qs.filter(owner=user)


def api_backtests(user, *, summary: bool = False, strategy_id: str | None = None) -> QuerySet[Backtest]:
    """The API's backtests: without curves and trades for a `summary`, narrowed to one strategy id."""
    qs = backtests_for(user)
    if summary:
        qs = qs.defer("equity_curve", "trades")
    return qs.filter(strategy_id=strategy_id) if strategy_id and strategy_id.isdigit() else qs


def own_backtests(user) -> QuerySet[Backtest]:
    """The user's own backtests (for pages: operators' included), with strategy and coin."""
    return Backtest.objects.filter(owner=user).select_related("strategy", "coin")


def strategy_backtests(user, strategy: Strategy, *, limit: int) -> list[Backtest]:
    """The user's newest `limit` backtests of one strategy."""
    return list(Backtest.objects.filter(owner=user, strategy=strategy)[:limit])


def paper_runs_for(user) -> QuerySet[PaperRun]:
    return PaperRun.objects.filter(owner=user).select_related("strategy", "portfolio", "coin__quote")


def strategy_paper_runs(user, strategy: Strategy, *, limit: int) -> list[PaperRun]:
    return list(paper_runs_for(user).filter(strategy=strategy)[:limit])


def paper_runs_with_fill_counts(user) -> list[PaperRun]:
    """The user's paper runs, each with `fill_count`."""
    return list(paper_runs_for(user).annotate(fill_count=Count("fills")))


def own_portfolio(user, portfolio_id):
    """One of the user's portfolios, or None."""
    from portfolios.models import Portfolio

    return Portfolio.objects.filter(pk=portfolio_id, owner=user).first()
