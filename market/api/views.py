"""Market API: coins, history, OHLC, top movers, trending, global; sync for operators. Hot reads are cached."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import ReadOnlyModelViewSet

from cryptodesk.api.caching import cache_key, cached_json_response, store
from market import selectors, services
from market.filters import CoinFilter

from .serializers import (
    CoinSerializer,
    GlobalStatsSerializer,
    HistorySerializer,
    SyncQueuedSerializer,
    SyncRunSerializer,
    TrendingSerializer,
)

# Rebuilt at most once a minute even without a sync: the `stale` flags age while no sync comes.
MARKET_CACHE_TTL_S = 60

DAYS_PARAM = OpenApiParameter(
    "days",
    str,
    enum=list(selectors.HISTORY_DAYS),
    default="30",
    description="Range: 1, 7, 14, 30, 90, 180, 365 or max.",
)


class DaysQuery(serializers.Serializer):
    days = serializers.ChoiceField(choices=list(selectors.HISTORY_DAYS), default="30")


class LimitQuery(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=selectors.TOP_LIMIT_MAX, default=10)


def _query(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CoinViewSet(ReadOnlyModelViewSet):
    """Coins with their latest quote. `{id}` is a CoinGecko id or a symbol (the highest-ranked coin with it)."""

    serializer_class = CoinSerializer
    permission_classes = [AllowAny]
    filterset_class = CoinFilter
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return selectors.coin_rows()

    def get_object(self):
        coin = selectors.coin_by_id_or_symbol(self.kwargs["pk"])
        if coin is None:
            raise Http404
        return coin

    def list(self, request: Request, *args, **kwargs):
        return _cached(request, "coins", lambda: super(CoinViewSet, self).list(request, *args, **kwargs).data)

    def retrieve(self, request: Request, *args, **kwargs):
        return _cached(request, "coin", lambda: CoinSerializer(self.get_object()).data)

    @extend_schema(parameters=[DAYS_PARAM], responses=HistorySerializer)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def history(self, request: Request, pk: str | None = None):
        days = selectors.HISTORY_DAYS[_query(DaysQuery, request)["days"]]
        return _cached(request, "history", lambda: selectors.price_history(self.get_object(), days=days))

    @extend_schema(
        parameters=[DAYS_PARAM],
        responses={200: {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}},
        description="Candles computed from stored points: [[start ms, open, high, low, close], …] (30 min up to 2 "
        "days, 4 h up to 30 days, then daily). The time comes as a number, prices as decimal strings.",
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def ohlc(self, request: Request, pk: str | None = None):
        days = selectors.HISTORY_DAYS[_query(DaysQuery, request)["days"]]
        return _cached(request, "ohlc", lambda: selectors.ohlc(self.get_object(), days=days))


def _cached(request: Request, namespace: str, build, *, with_request: bool = True, variant: str = ""):
    """One read of the market version per request: the cache key and Last-Modified both come from it."""
    version = selectors.market_version()
    key = cache_key(namespace, version, request if with_request else None, variant=variant)
    return cached_json_response(
        request, key=key, build=build, modified=selectors.market_modified(version), ttl_s=MARKET_CACHE_TTL_S
    )


def _top_data(category: str, limit: int) -> list:
    return CoinSerializer(selectors.top_coins(category, limit=limit), many=True).data


def _trending_data() -> list:
    return TrendingSerializer(selectors.trending_coins(), many=True).data


def _global_data() -> dict:
    stats = selectors.latest_global_stats()
    if stats is None:
        raise Http404("No global market data yet.")
    return GlobalStatsSerializer(stats).data


def prewarm_market_caches(version: str) -> None:
    """Build the hot, link-free responses once, right after a sync, so no request has to."""
    modified = selectors.market_modified(version)
    for category in selectors.TOP_CATEGORIES:
        store(
            cache_key("top", version, variant=f"{category}:10"),
            _top_data(category, 10),
            modified=modified,
            ttl_s=MARKET_CACHE_TTL_S,
        )
    store(cache_key("trending", version), _trending_data(), modified=modified, ttl_s=MARKET_CACHE_TTL_S)
    if selectors.latest_global_stats() is not None:
        store(cache_key("global", version), _global_data(), modified=modified, ttl_s=MARKET_CACHE_TTL_S)


class TopView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("category", str, OpenApiParameter.PATH, enum=list(selectors.TOP_CATEGORIES)),
            OpenApiParameter("limit", int, description="1 to 100, default 10."),
        ],
        responses=CoinSerializer(many=True),
        operation_id="market_top",
    )
    def get(self, request: Request, category: str) -> Response:
        if category not in selectors.TOP_CATEGORIES:
            raise Http404(f"Unknown category; use one of {', '.join(selectors.TOP_CATEGORIES)}.")
        limit = _query(LimitQuery, request)["limit"]
        return _cached(
            request, "top", lambda: _top_data(category, limit), with_request=False, variant=f"{category}:{limit}"
        )


class TrendingView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=TrendingSerializer(many=True), operation_id="market_trending")
    def get(self, request: Request) -> Response:
        return _cached(request, "trending", _trending_data, with_request=False)


class GlobalView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=GlobalStatsSerializer, operation_id="market_global")
    def get(self, request: Request) -> Response:
        return _cached(request, "global", _global_data, with_request=False)


class SyncView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={202: SyncQueuedSerializer}, operation_id="market_sync")
    def post(self, request: Request) -> Response:
        run, task_id = services.request_sync(requested_by=request.user)
        run.refresh_from_db()
        body = {"task_id": task_id, "sync_run": SyncRunSerializer(run).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SyncRunListView(ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = SyncRunSerializer

    def get_queryset(self):
        return selectors.recent_sync_runs()
