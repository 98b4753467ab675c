"""Display helpers for paper-trading pages: the number filters (from cryptodesk) and the user's watchlists."""

from django import template
from django.db.models import Exists, OuterRef

from cryptodesk.api.scoping import owner_scoped
from cryptodesk.templatetags.numbers import (
    ago,
    exact_money,
    fraction_pct,
    money,
    plain,
    qty,
    share,
    signed_money,
    signed_share,
    tone,
)
from portfolios.models import Watchlist

register = template.Library()

# the number filters live in cryptodesk (shared by every app); registered here too so `{% load portfolio_tags %}`
# keeps working
for _filter in (money, signed_money, exact_money, qty, share, signed_share, fraction_pct, tone, ago, plain):
    register.filter(_filter.__name__, _filter)


@register.simple_tag(takes_context=True)
def watchlists_for_coin(context, coin) -> list[Watchlist]:
    """The signed-in user's watchlists, each marked with `has_coin` (one query; none for visitors)."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return []
    holds = Watchlist.coins.through.objects.filter(watchlist=OuterRef("pk"), coin_id=coin.pk)
    return list(owner_scoped(Watchlist.objects.all(), user, write=True).annotate(has_coin=Exists(holds)))


@register.simple_tag(takes_context=True)
def watched_coin_ids(context) -> set[str]:
    """Ids of every coin on any of the user's watchlists (one query; none for visitors)."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return set()
    return set(
        Watchlist.coins.through.objects.filter(watchlist__owner=user).values_list("coin_id", flat=True).distinct()
    )
