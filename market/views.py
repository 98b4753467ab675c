"""Market pages: the dashboard, the markets table (htmx: sort, search, page, refresh), coin detail and its chart."""

import hashlib

from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.html import escape
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from cryptodesk.api.caching import cache_key, cached_json_response

from . import selectors
from .filters import CoinFilter
from .models import Coin

PAGE_SIZE = 50
CHART_CACHE_TTL_S = 60  # keyed by the market version too; a minute keeps the range's "now" close to now
CHART_RANGE_LABELS = {"1": "1D", "7": "7D", "30": "30D", "90": "90D", "365": "1Y", "max": "Max"}
CHART_DEFAULT_RANGE = "30"
SORTABLE = [  # (field, header, descending first)
    ("market_cap_rank", "#", False),
    ("current_price", "Price", True),
    ("price_change_percentage_24h", "24h", True),
    ("market_cap", "Market cap", True),
    ("total_volume", "Volume (24h)", True),
]


def _sort_columns(request: HttpRequest) -> list[dict]:
    """Header links: a click sorts by that column, a second click reverses it; search is kept, page reset."""
    current = request.GET.get("ordering", "")
    columns = []
    for field, label, descending_first in SORTABLE:
        if current == field:
            target = f"-{field}"
        elif current == f"-{field}":
            target = field
        else:
            target = f"-{field}" if descending_first else field
        query = request.GET.copy()
        query["ordering"] = target
        query.pop("page", None)
        columns.append(
            {
                "field": field,
                "label": label,
                "url": f"?{query.urlencode()}",
                "active": current.lstrip("-") == field,
                "descending": current.startswith("-"),
            }
        )
    return columns


@require_GET
def markets_view(request: HttpRequest) -> HttpResponse:
    filterset = CoinFilter(request.GET, queryset=selectors.coin_rows())
    rows = filterset.qs if filterset.is_valid() else selectors.coin_rows().none()
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filterset": filterset,
        "page": page,
        "query": query.urlencode(),
        "ordering": request.GET.get("ordering", ""),
        "sort_columns": _sort_columns(request),
        "search": request.GET.get("search", ""),
        "global_stats": selectors.latest_global_stats(),
        "market_status": selectors.market_data_status(),
    }
    template = "market/_coin_table.html" if request.headers.get("HX-Request") else "market/coin_list.html"
    return render(request, template, context)


@require_GET
def coin_detail_view(request: HttpRequest, coin_id: str) -> HttpResponse:
    coin = selectors.coin_by_id_or_symbol(coin_id)
    if coin is None:
        raise Http404("No such coin")
    quote = coin.quote
    context = {
        "coin": coin,
        "quote": quote,
        "stale": selectors.is_stale(quote.last_updated),
        "ranges": [(value, CHART_RANGE_LABELS[value]) for value in selectors.CHART_RANGES],
        "default_range": CHART_DEFAULT_RANGE,
    }
    return render(request, "market/coin_detail.html", context)


@require_GET
def coin_chart_view(request: HttpRequest, coin_id: str) -> HttpResponse:
    """The coin page's chart series (`selectors.chart_data`), cached per market version like the API's reads."""
    days = request.GET.get("days", CHART_DEFAULT_RANGE)
    kind = request.GET.get("kind", selectors.CHART_KINDS[0])
    errors = {}
    if days not in selectors.CHART_RANGES:
        errors["days"] = [f"Choose one of {', '.join(selectors.CHART_RANGES)}."]
    if kind not in selectors.CHART_KINDS:
        errors["kind"] = [f"Choose one of {', '.join(selectors.CHART_KINDS)}."]
    if errors:
        return JsonResponse({"detail": "This chart cannot be drawn.", "errors": errors}, status=400)

    def build() -> dict:
        coin = selectors.coin_by_id_or_symbol(coin_id)
        if coin is None:
            raise Http404("No such coin")
        return selectors.chart_data(coin, days=days, kind=kind)

    version = selectors.market_version()
    return cached_json_response(
        request,
        key=cache_key("coin-chart", version, params={"days": days, "kind": kind}, variant=coin_id),
        build=build,
        modified=selectors.market_modified(version),
        ttl_s=CHART_CACHE_TTL_S,
    )


_COLORS = ["#4f46e5", "#0891b2", "#059669", "#d97706", "#dc2626", "#7c3aed", "#db2777", "#2563eb", "#65a30d"]


def monogram_svg(symbol: str, seed: str) -> str:
    letters = escape((symbol or "?")[:3].upper())
    color = _COLORS[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(_COLORS)]
    size = 15 if len(letters) <= 2 else 12
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40" role="img">'
        f'<circle cx="20" cy="20" r="20" fill="{color}"/>'
        f'<text x="20" y="20" dy=".35em" text-anchor="middle" font-family="system-ui, sans-serif" '
        f'font-size="{size}" font-weight="700" fill="#fff">{letters}</text></svg>'
    )


@require_GET
@cache_control(max_age=86400, public=True)
def coin_logo_view(request: HttpRequest, coin_id: str) -> HttpResponse:
    """The stored logo, or a drawn monogram: pages never load an image from another host."""
    coin = Coin.objects.filter(pk=coin_id).only("id", "symbol", "logo").first()
    if coin is None:
        raise Http404("No such coin")
    if coin.logo and coin.logo.storage.exists(coin.logo.name):
        return FileResponse(coin.logo.open("rb"))
    return HttpResponse(monogram_svg(coin.symbol, coin.pk), content_type="image/svg+xml")
