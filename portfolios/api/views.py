"""Portfolio API: portfolios and their numbers, orders, trades (CSV too), watchlists, alerts, notifications."""

import csv
from collections.abc import Iterator

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet, ModelViewSet

from cryptodesk.api.scoping import owner_scoped
from portfolios import selectors, services
from portfolios.filters import OrderFilter, TradeFilter
from portfolios.models import Alert, Notification, Order, Portfolio, Trade, Watchlist

from .serializers import (
    AlertSerializer,
    BenchmarkPerformanceSerializer,
    HoldingSerializer,
    NotificationSerializer,
    OrderCreateSerializer,
    OrderSerializer,
    PerformanceSerializer,
    PortfolioCreateSerializer,
    PortfolioSerializer,
    PortfolioUpdateSerializer,
    RiskSerializer,
    SummarySerializer,
    TradeSerializer,
    TransferSerializer,
    ValueHistorySerializer,
    WatchlistSerializer,
)

SAFE = {"GET", "HEAD", "OPTIONS"}


class OwnedMixin:
    """Reads: your own rows (operators: everyone's). Writes: only ever your own. Others' rows are 404."""

    owner_field = "owner"

    def scoped(self, qs):
        return owner_scoped(qs, self.request.user, field=self.owner_field, write=self.request.method not in SAFE)


@extend_schema_view(
    create=extend_schema(request=PortfolioCreateSerializer, responses={201: PortfolioSerializer}),
    update=extend_schema(request=PortfolioUpdateSerializer, responses=PortfolioSerializer),
    partial_update=extend_schema(request=PortfolioUpdateSerializer, responses=PortfolioSerializer),
)
class PortfolioViewSet(OwnedMixin, ModelViewSet):
    serializer_class = PortfolioSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Portfolio.objects.none()
        return self.scoped(Portfolio.objects.all())

    def create(self, request: Request) -> Response:
        data = _valid(PortfolioCreateSerializer, request)
        portfolio = services.create_portfolio(owner=request.user, **data)
        return Response(PortfolioSerializer(portfolio).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        portfolio = self.get_object()
        data = _valid(PortfolioUpdateSerializer, request)
        return Response(PortfolioSerializer(services.rename_portfolio(portfolio=portfolio, **data)).data)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        services.delete_portfolio(portfolio=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=HoldingSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def holdings(self, request: Request, pk=None) -> Response:
        valuation = selectors.portfolio_valuation(self.get_object())
        return Response(HoldingSerializer(valuation.rows, many=True).data)

    @extend_schema(responses=SummarySerializer)
    @action(detail=True, methods=["get"])
    def summary(self, request: Request, pk=None) -> Response:
        return Response(SummarySerializer(selectors.portfolio_valuation(self.get_object())).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("days", str, enum=list(selectors.PERFORMANCE_DAYS), default="30"),
            OpenApiParameter(
                "benchmark",
                str,
                description="A coin id: adds `benchmark`, `alpha`, `beta`, `tracking_error`, `information_ratio` "
                f"and `missing`; empty for {selectors.DEFAULT_BENCHMARK}, absent for none. An unknown coin is a 400.",
            ),
        ],
        responses=BenchmarkPerformanceSerializer,
    )
    @action(detail=True, methods=["get"])
    def performance(self, request: Request, pk=None) -> Response:
        key = request.query_params.get("days", "30")
        if key not in selectors.PERFORMANCE_DAYS:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"days": [f"Use one of {', '.join(selectors.PERFORMANCE_DAYS)}."]})
        benchmark = request.query_params.get("benchmark")
        result = selectors.performance(self.get_object(), days=selectors.PERFORMANCE_DAYS[key], benchmark=benchmark)
        body = {
            "days": result.days,
            "time_weighted_return": result.time_weighted_return,
            "simple_return": result.simple_return,
            "net_flows": result.net_flows,
            "series": [{"date": day, "total_value": value} for day, value in result.series],
        }
        if result.benchmark is None:
            return Response(PerformanceSerializer(body).data)
        against = result.benchmark
        body["benchmark"] = {
            "coin": against.coin.pk,
            "observations": against.observations,
            "twr": against.time_weighted_return,
            "series": [{"date": day, "total_value": value} for day, value in against.series],
        }
        body.update({name: getattr(against, name) for name in selectors.RELATIVE_FIGURES})
        body["missing"] = against.missing
        return Response(BenchmarkPerformanceSerializer(body).data)

    @extend_schema(
        parameters=[OpenApiParameter("days", str, enum=list(selectors.PERFORMANCE_DAYS), default="30")],
        responses=ValueHistorySerializer,
    )
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk=None) -> Response:
        """The value over a range, one point per hour (7, 30 days) or day, rebuilt from trades and stored prices."""
        key = request.query_params.get("days", "30")
        if key not in selectors.PERFORMANCE_DAYS:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"days": [f"Use one of {', '.join(selectors.PERFORMANCE_DAYS)}."]})
        portfolio, days = self.get_object(), selectors.PERFORMANCE_DAYS[key]
        history = selectors.value_history(portfolio, days=days)
        body = {
            "days": days,
            "interval_s": int(history.interval.total_seconds()),
            "time_weighted_return": selectors.performance(portfolio, days=days).time_weighted_return,
            "points": history.points,
        }
        return Response(ValueHistorySerializer(body).data)

    @extend_schema(responses=RiskSerializer)
    @action(detail=True, methods=["get"])
    def risk(self, request: Request, pk=None) -> Response:
        return Response(RiskSerializer(selectors.risk(self.get_object())).data)

    @extend_schema(
        request=TransferSerializer,
        responses={201: TransferSerializer, 200: TransferSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Same key and body: the same transfer (200), never a second one. Same key, other body: 422.",
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def transfers(self, request: Request, pk=None) -> Response:
        portfolio = self.get_object()
        data = _valid(TransferSerializer, request)
        transfer, created = services.transfer_cash(
            user=request.user, portfolio_id=portfolio.pk, idempotency_key=_idempotency_key(request), **data
        )
        return Response(
            TransferSerializer(transfer).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


def _idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header as sent (absent: None); the service refuses an empty or malformed one."""
    return request.headers.get("Idempotency-Key")


def _valid(serializer_class, request: Request, **context) -> dict:
    serializer = serializer_class(data=request.data, context={"request": request, **context})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_view(
    create=extend_schema(
        request=OrderCreateSerializer,
        responses={201: OrderSerializer, 200: OrderSerializer},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Same key and body: the same order (200), never a second one. Same key, other body: 422.",
            )
        ],
    )
)
class OrderViewSet(
    OwnedMixin, mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet
):
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    owner_field = "portfolio__owner"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Order.objects.none()
        return self.scoped(Order.objects.all())

    def create(self, request: Request) -> Response:
        data = _valid(OrderCreateSerializer, request)
        order, created = services.place_order(
            user=request.user,
            portfolio_id=data["portfolio"].pk,
            coin_id=data["coin"].pk,
            side=data["side"],
            type=data["type"],
            quantity=data["quantity"],
            **{name: data.get(name) for name in OrderCreateSerializer.PRICE_TERMS},
            idempotency_key=_idempotency_key(request),
        )
        order.refresh_from_db()  # a limit order already through the market has filled on commit
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: OrderSerializer, 409: OpenApiResponse(description="Not open.")})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        order = self.get_object()  # 404 for others' orders
        return Response(OrderSerializer(services.cancel_order(user=request.user, order_id=order.pk)).data)


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


class _Echo:
    def write(self, value: str) -> str:
        return value


TRADE_COLUMNS = [
    "executed_at",
    "portfolio",
    "coin",
    "side",
    "quantity",
    "price",
    "notional",
    "fee",
    "realized_pnl",
    "order",
]


def _csv_rows(trades) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(TRADE_COLUMNS)
    for row in TradeSerializer(trades.iterator(chunk_size=2000), many=True).data:
        yield writer.writerow([row[column] if row[column] is not None else "" for column in TRADE_COLUMNS])


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv streams every matching trade.")
        ],
        responses={(200, "application/json"): TradeSerializer(many=True), (200, "text/csv"): OpenApiTypes.STR},
    )
)
class TradeViewSet(OwnedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    serializer_class = TradeSerializer
    filterset_class = TradeFilter
    owner_field = "portfolio__owner"
    renderer_classes = [JSONRenderer, CSVRenderer]

    def get_renderers(self):
        renderers = super().get_renderers()
        if self.action == "list":
            return renderers
        return [renderer for renderer in renderers if not isinstance(renderer, CSVRenderer)]  # CSV is the export

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Trade.objects.none()
        return self.scoped(Trade.objects.all())

    def list(self, request: Request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            trades = self.filter_queryset(self.get_queryset()).order_by("executed_at", "id")
            response = StreamingHttpResponse(_csv_rows(trades), content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="trades.csv"'
            return response
        return super().list(request, *args, **kwargs)


class WatchlistViewSet(OwnedMixin, ModelViewSet):
    serializer_class = WatchlistSerializer

    def perform_destroy(self, watchlist: Watchlist) -> None:
        services.delete_watchlist(watchlist=watchlist)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Watchlist.objects.none()
        return self.scoped(Watchlist.objects.prefetch_related("coins"))

    def create(self, request: Request) -> Response:
        data = _valid(WatchlistSerializer, request)
        watchlist = services.save_watchlist(owner=request.user, name=data["name"], coin_ids=data["coins"])
        return Response(WatchlistSerializer(watchlist).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args, **kwargs) -> Response:
        watchlist = self.get_object()
        partial = kwargs.get("partial", False)
        serializer = WatchlistSerializer(watchlist, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        watchlist = services.save_watchlist(
            owner=request.user,
            name=data.get("name", watchlist.name),
            coin_ids=data["coins"] if "coins" in data else [coin.pk for coin in watchlist.coins.all()],
            watchlist=watchlist,
        )
        return Response(WatchlistSerializer(watchlist).data)


class AlertViewSet(OwnedMixin, ModelViewSet):
    serializer_class = AlertSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Alert.objects.none()
        return self.scoped(Alert.objects.select_related("coin"))

    def perform_create(self, serializer) -> None:
        serializer.instance = services.save_alert(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        services.save_alert(owner=self.request.user, alert=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, alert: Alert) -> None:
        services.delete_alert(alert=alert)


class NotificationViewSet(mixins.ListModelMixin, GenericViewSet):
    serializer_class = NotificationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Notification.objects.none()
        qs = selectors.notifications_for(self.request.user)
        if self.request.query_params.get("unread") in {"1", "true"}:
            qs = qs.filter(read_at__isnull=True)
        return qs

    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="Only unread notifications.")],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def read(self, request: Request, pk=None) -> Response:
        notification = self.get_object()
        services.mark_notifications_read(user=request.user, notification_id=notification.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=False, methods=["post"], url_path="read-all")
    def read_all(self, request: Request) -> Response:
        services.mark_notifications_read(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
