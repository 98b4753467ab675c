"""Strategy reads: your own, and everyone's published ones; backtests and paper runs are their runner's."""

from django.db.models import Q, QuerySet

from .models import Backtest, PaperRun, Strategy


def readable_strategies(user) -> QuerySet[Strategy]:
    """Yours, plus every published one (operators read all); an archived (deleted) strategy is nobody's."""
    qs = Strategy.objects.select_related("owner", "coin").filter(archived_at__isnull=True)
    if user.is_staff:
        return qs
    return qs.filter(Q(owner=user) | Q(visibility=Strategy.Visibility.PUBLISHED))


def own_strategies(user) -> QuerySet[Strategy]:
    return Strategy.objects.select_related("owner", "coin").filter(owner=user, archived_at__isnull=True)


def backtests_for(user) -> QuerySet[Backtest]:
    qs = Backtest.objects.select_related("strategy")
    return qs if user.is_staff else qs.filter(owner=user)


def paper_runs_for(user) -> QuerySet[PaperRun]:
    return PaperRun.objects.filter(owner=user).select_related("strategy", "portfolio", "coin__quote")


def own_portfolio(user, portfolio_id):
    """One of the user's portfolios, or None."""
    from portfolios.models import Portfolio

    return Portfolio.objects.filter(pk=portfolio_id, owner=user).first()
