"""Display helpers for paper-trading pages: money, quantities, shares of a whole; the user's watchlists."""

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django import template
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.timesince import timesince

from cryptodesk.api.scoping import owner_scoped
from cryptodesk.money import as_str
from portfolios.models import Watchlist

register = template.Library()

CENT = Decimal("0.01")
MINUS = "\u2212"  # a real minus sign: lines up with the plus in tabular figures


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _grouped(number: Decimal, *, places: int | None) -> str:
    """1,234.56 from a non-negative Decimal; places=None keeps every significant decimal (at least two)."""
    if places is not None:
        return f"{number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):,.{places}f}"
    text = as_str(number)
    whole, _, fraction = text.partition(".")
    fraction = fraction.ljust(2, "0")
    return f"{int(whole):,}.{fraction}"


@register.filter
def money(value, places: int = 2) -> str:
    """$1,234.56 and −$12.30: amounts of US dollars, rounded half-even to cents."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = "$" + _grouped(abs(number), places=int(places))
    return MINUS + text if number.quantize(Decimal(1).scaleb(-int(places))) < 0 else text


@register.filter
def signed_money(value) -> str:
    """+$12.30 / −$12.30 / $0.00: a change or a profit."""
    number = _decimal(value)
    if number is None:
        return "—"
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        return "$0.00"
    return ("+" if rounded > 0 else MINUS) + "$" + _grouped(abs(rounded), places=2)


@register.filter
def exact_money(value) -> str:
    """Every significant digit, at least cents: $0.20, $200.20, $0.000123 (fees and costs before an order)."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = "$" + _grouped(abs(number), places=None)
    return MINUS + text if number < 0 else text


@register.filter
def qty(value) -> str:
    """A quantity as stored, without trailing zeros: 1,234.5, 0.00012345."""
    number = _decimal(value)
    if number is None:
        return "—"
    text = as_str(abs(number))
    whole, dot, fraction = text.partition(".")
    grouped = f"{int(whole):,}" + (dot + fraction if fraction else "")
    return MINUS + grouped if number < 0 else grouped


@register.filter
def share(value, places: int = 1) -> str:
    """A share that is already a percentage: 42.5%."""
    number = _decimal(value)
    if number is None:
        return "—"
    return f"{number.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_EVEN):,.{int(places)}f}%"


@register.filter
def signed_share(value) -> str:
    """A percentage change: +1.23% / −4.50%."""
    number = _decimal(value)
    if number is None:
        return "—"
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if rounded == 0:
        return "0.00%"
    return ("+" if rounded > 0 else MINUS) + f"{abs(rounded):,.2f}%"


@register.filter
def fraction_pct(value, places: int = 2) -> str:
    """A fraction as a percentage: 0.1234 → 12.34%."""
    number = _decimal(value)
    if number is None:
        return "—"
    return share(number * 100, places)


@register.filter
def tone(value) -> str:
    """The CSS class for a signed number: up, down, or nothing for zero."""
    number = _decimal(value)
    if number is None or number.quantize(CENT) == 0:
        return ""
    return "up" if number > 0 else "down"


@register.filter
def ago(value) -> str:
    """How long ago, roughly: "just now", "3 minutes ago", "2 days ago"."""
    if value is None:
        return "—"
    if (timezone.now() - value).total_seconds() < 60:
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.filter
def plain(value) -> str:
    """The exact value for a data attribute: 0.2, 200 (no exponent, no trailing zeros)."""
    number = _decimal(value)
    return "" if number is None else as_str(number)


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
