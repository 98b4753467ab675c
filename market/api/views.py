"""Market API: coins, history, OHLC, top movers, trending, global; sync for operators. Hot reads are cached."""

from decimal import Decimal
from urllib.parse import urlencode

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView
from rest_framework.viewsets import ReadOnlyModelViewSet

from cryptodesk.api.caching import cache_key, cached_json_response, known_params
from cryptodesk.api.pagination import Pagination
from market import selectors, services
from market.filters import CoinFilter

from .responses import MARKET_CACHE_TTL_S, global_data, top_data, trending_data
from .serializers import (
    OHLC_SCHEMA,
    CoinSerializer,
    GlobalStatsSerializer,
    HistorySerializer,
    SyncQueuedSerializer,
    SyncRunSerializer,
    TrendingSerializer,
)

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
    limit = serializers.IntegerField(
        min_value=1, max_value=selectors.TOP_LIMIT_MAX, default=10, help_text="How many coins, 1 to 100."
    )


def _query(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CoinPagination(Pagination):
    """Page links carry only the parameters the coin list reads, so one cached page serves every spelling."""

    known = [*CoinFilter.base_filters, Pagination.page_size_query_param]

    def _base_url(self) -> str:
        request = self.request
        query = urlencode(sorted(known_params(request.query_params, self.known).items()))
        return request.build_absolute_uri(request.path) + (f"?{query}" if query else "")

    def get_next_link(self) -> str | None:
        if not self.page.has_next():
            return None
        return replace_query_param(self._base_url(), self.page_query_param, self.page.next_page_number())

    def get_previous_link(self) -> str | None:
        if not self.page.has_previous():
            return None
        number = self.page.previous_page_number()
        if number == 1:
            return remove_query_param(self._base_url(), self.page_query_param)
        return replace_query_param(self._base_url(), self.page_query_param, number)


def _normalised(value):
    return value.normalize() if isinstance(value, Decimal) else value


def _coin_list_params(request: Request, paginator: CoinPagination) -> dict | None:
    """The coin list's cache key: validated filters, the page and the effective page size; nothing else.

    None when the filters are invalid: that answer is a 400, built every time and never cached.
    """
    filterset = CoinFilter(request.query_params, queryset=selectors.coin_rows().none())
    if not filterset.is_valid():
        return None
    filters = filterset.form.cleaned_data
    params = {name: _normalised(value) for name, value in filters.items() if value not in (None, "")}
    page = request.query_params.get(paginator.page_query_param, "1").strip()
    params[paginator.page_query_param] = int(page) if page.isdigit() else page
    params[paginator.page_size_query_param] = paginator.get_page_size(request)
    return params


class CoinViewSet(ReadOnlyModelViewSet):
    """Coins with their latest quote. `{id}` is a CoinGecko id or a symbol (the highest-ranked coin with it)."""

    serializer_class = CoinSerializer
    permission_classes = [AllowAny]
    filterset_class = CoinFilter
    pagination_class = CoinPagination
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        return selectors.coin_rows()

    def get_object(self):
        coin = selectors.coin_by_id_or_symbol(self.kwargs["pk"])
        if coin is None:
            raise Http404
        return coin

    def list(self, request: Request, *args, **kwargs):
        params = _coin_list_params(request, self.paginator)
        if params is None:
            return super().list(request, *args, **kwargs)  # raises the filters' 400
        return _cached(
            request,
            "coins",
            lambda: super(CoinViewSet, self).list(request, *args, **kwargs).data,
            params=params,
            host=request.get_host(),  # the page links are absolute
        )

    def retrieve(self, request: Request, *args, **kwargs):
        return _cached(request, "coin", lambda: CoinSerializer(self.get_object()).data, variant=self.kwargs["pk"])

    @extend_schema(parameters=[DAYS_PARAM], responses=HistorySerializer)
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def history(self, request: Request, pk: str | None = None):
        choice = _query(DaysQuery, request)["days"]
        days = selectors.HISTORY_DAYS[choice]
        return _cached(
            request,
            "history",
            lambda: selectors.price_history(self.get_object(), days=days),
            variant=self.kwargs["pk"],
            params={"days": choice},
        )

    @extend_schema(
        parameters=[DAYS_PARAM],
        responses={200: OHLC_SCHEMA},
        description="Candles computed from stored points: [[start ms, open, high, low, close], …] (30 min up to 2 "
        "days, 4 h up to 30 days, then daily). A bucket with several stored points takes its open, high, low and "
        "close from them; one with a single stored close (daily history) opens at the previous close. The time "
        "comes as a number, prices as decimal strings.",
    )
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def ohlc(self, request: Request, pk: str | None = None):
        choice = _query(DaysQuery, request)["days"]
        days = selectors.HISTORY_DAYS[choice]
        return _cached(
            request,
            "ohlc",
            lambda: selectors.ohlc(self.get_object(), days=days),
            variant=self.kwargs["pk"],
            params={"days": choice},
        )


def _cached(request: Request, namespace: str, build, *, params: dict | None = None, host: str = "", variant: str = ""):
    """One read of the market version per request: the cache key and Last-Modified both come from it.

    The key holds only what the caller validated (`params`, `variant`): unknown query parameters never
    make entries of their own.
    """
    version = selectors.market_version()
    key = cache_key(namespace, version, params=params, host=host, variant=variant)
    return cached_json_response(
        request, key=key, build=build, modified=selectors.market_modified(version), ttl_s=MARKET_CACHE_TTL_S
    )


class TopView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("category", str, OpenApiParameter.PATH, enum=list(selectors.TOP_CATEGORIES)),
            LimitQuery,
        ],
        responses=CoinSerializer(many=True),
        operation_id="market_top",
    )
    def get(self, request: Request, category: str) -> Response:
        if category not in selectors.TOP_CATEGORIES:
            raise Http404(f"Unknown category; use one of {', '.join(selectors.TOP_CATEGORIES)}.")
        limit = _query(LimitQuery, request)["limit"]
        return _cached(request, "top", lambda: top_data(category, limit), variant=f"{category}:{limit}")


class TrendingView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=TrendingSerializer(many=True), operation_id="market_trending")
    def get(self, request: Request) -> Response:
        return _cached(request, "trending", trending_data)


class GlobalView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses=GlobalStatsSerializer,
        operation_id="market_global",
        description="Before the first sync: 200 with every figure null and `status` `empty`.",
    )
    def get(self, request: Request) -> Response:
        return _cached(request, "global", global_data)


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
