"""Display helpers for paper-trading pages: the number filters (from cryptodesk) and the user's watchlists."""

from decimal import localcontext

from django import template
from django.db.models import Exists, OuterRef

from cryptodesk.api.scoping import owner_scoped
from cryptodesk.money import CONTEXT
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


@register.filter
def trigger_distance(order) -> str:
    """How far a protective order's trigger is from the last price, in percent of it: "−4.20%"."""
    quote = getattr(order.coin, "quote", None)
    if order.stop_price is None or quote is None or not quote.current_price:
        return ""
    with localcontext(CONTEXT):
        return signed_share((order.stop_price - quote.current_price) / quote.current_price * 100)


@register.filter
def lookup(mapping, key):
    """`mapping|lookup:key`: the value for a key a template cannot spell as an attribute (a coin id)."""
    return mapping.get(key) if mapping else None
