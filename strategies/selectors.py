"""Strategy reads: your own, and everyone's published ones."""

from django.db.models import Q, QuerySet

from .models import Backtest, Strategy


def readable_strategies(user) -> QuerySet[Strategy]:
    """Yours, plus every published one (operators read all)."""
    qs = Strategy.objects.select_related("owner", "coin")
    if user.is_staff:
        return qs
    return qs.filter(Q(owner=user) | Q(visibility=Strategy.Visibility.PUBLISHED))


def own_strategies(user) -> QuerySet[Strategy]:
    return Strategy.objects.select_related("owner", "coin").filter(owner=user)


def backtests_for(user) -> QuerySet[Backtest]:
    qs = Backtest.objects.select_related("strategy")
    return qs if user.is_staff else qs.filter(owner=user)
