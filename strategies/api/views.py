"""Strategies API: CRUD (yours, published ones to read), kinds, clone, backtests, optimisations."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet, ModelViewSet

from strategies import optimizations, selectors, services
from strategies.errors import NotAllowed, TooManyBacktests, field_error
from strategies.models import Backtest, Optimization, PaperRun, Strategy

from .serializers import (
    BacktestCreateSerializer,
    BacktestSerializer,
    BacktestSummarySerializer,
    KindSerializer,
    OptimizationCreateSerializer,
    OptimizationSerializer,
    OptimizationSummarySerializer,
    PaperRunCreateSerializer,
    PaperRunDetailSerializer,
    PaperRunSerializer,
    StrategySerializer,
)

SAFE = {"GET", "HEAD", "OPTIONS"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problem(error: type, description: str) -> dict:
    """A problem-details response of one DomainError, for `extend_schema(responses=...)`."""
    return {
        (error.status, "application/problem+json"): OpenApiResponse(
            response=PROBLEM, description=f"{description} (type `/problems/{error.slug}`)."
        )
    }


OPTIMIZATION_CAP = _problem(
    TooManyBacktests,
    "You already have BACKTEST_MAX_ACTIVE_PER_USER (default 3) backtests or optimisations queued or running: wait "
    "for one to finish (or too many requests: see Retry-After)",
)
PUBLISH_REFUSED = _problem(NotAllowed, "Only analysts and admins can publish strategies (`visibility: published`)")
BACKTEST_CAP = _problem(
    TooManyBacktests,
    "You already have BACKTEST_MAX_ACTIVE_PER_USER (default 3) backtests queued or running: wait for one to finish "
    "(or too many requests: see Retry-After)",
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("mine", bool, description="Only your own strategies."),
            OpenApiParameter("kind", str),
            OpenApiParameter("coin", str),
        ]
    ),
    create=extend_schema(responses={201: StrategySerializer, **PUBLISH_REFUSED}),
    update=extend_schema(responses={200: StrategySerializer, **PUBLISH_REFUSED}),
    partial_update=extend_schema(responses={200: StrategySerializer, **PUBLISH_REFUSED}),
)
class StrategyViewSet(ModelViewSet):
    """Your strategies and the published ones. Only the owner changes a strategy; others' are 404 to change."""

    serializer_class = StrategySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Strategy.objects.none()
        readable = self.request.method in SAFE or self.action in {"clone", "backtests", "paper", "optimizations"}
        params = self.request.query_params
        return selectors.filtered_strategies(
            self.request.user,
            writable=not readable,
            mine=params.get("mine") in {"1", "true"},
            kind=params.get("kind"),
            coin=params.get("coin"),
        )

    def perform_create(self, serializer) -> None:
        serializer.instance = services.create_strategy(owner=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer) -> None:
        services.update_strategy(strategy=serializer.instance, user=self.request.user, **serializer.validated_data)

    def perform_destroy(self, instance: Strategy) -> None:
        """Deleted, or archived when others have backtests, paper runs or clones of it (theirs are kept)."""
        services.delete_strategy(strategy=instance, user=self.request.user)

    @extend_schema(request=None, responses={201: StrategySerializer})
    @action(detail=True, methods=["post"])
    def clone(self, request: Request, pk=None) -> Response:
        copy = services.clone_strategy(strategy=self.get_object(), user=request.user)
        return Response(StrategySerializer(copy, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PaperRunCreateSerializer, responses={201: PaperRunSerializer})
    @action(detail=True, methods=["post"])
    def paper(self, request: Request, pk=None) -> Response:
        """Trade this strategy on one of your paper portfolios after every market sync."""
        serializer = PaperRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio = selectors.own_portfolio(request.user, serializer.validated_data["portfolio"])
        if portfolio is None:
            raise field_error("portfolio", "Choose one of your portfolios.")
        run = services.start_paper_run(strategy=self.get_object(), user=request.user, portfolio=portfolio)
        return Response(PaperRunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=BacktestCreateSerializer, responses={202: BacktestSerializer, **BACKTEST_CAP})
    @action(detail=True, methods=["post"])
    def backtests(self, request: Request, pk=None) -> Response:
        serializer = BacktestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        backtest = services.queue_backtest(strategy=self.get_object(), user=request.user, **serializer.validated_data)
        backtest.refresh_from_db()  # without a broker it has already run
        return Response(BacktestSerializer(backtest).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=OptimizationCreateSerializer,
        responses={202: OptimizationSerializer, **OPTIMIZATION_CAP},
        parameters=[
            OpenApiParameter(
                "Location",
                str,
                OpenApiParameter.HEADER,
                response=[202],
                description="The optimisation's own URL, to poll.",
            )
        ],
        description="Backtest every combination of a grid of this strategy's parameters over one range (optionally "
        "walk-forward), on a worker. Poll the Location until `status` is `succeeded` or `failed`. Errors name "
        "`grid.<param>` (an unknown parameter, an empty or non-list value, a value out of bounds) or `grid` (too "
        "many combinations, or none the kind accepts); combinations the kind refuses (fast ≥ slow) are skipped "
        "and counted in `skipped`.",
    )
    @action(detail=True, methods=["post"])
    def optimizations(self, request: Request, pk=None) -> Response:
        serializer = OptimizationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        optimization = optimizations.queue_optimization(
            strategy=self.get_object(), user=request.user, **serializer.validated_data
        )
        optimization.refresh_from_db()  # without a broker it has already run
        location = request.build_absolute_uri(reverse("api:optimization-detail", args=[optimization.pk]))
        return Response(
            OptimizationSerializer(optimization).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location}
        )


class BacktestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Your backtests (operators read all). The list leaves out curves and trades."""

    def get_serializer_class(self):
        return BacktestSummarySerializer if self.action == "list" else BacktestSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Backtest.objects.none()
        return selectors.api_backtests(
            self.request.user, summary=self.action == "list", strategy_id=self.request.query_params.get("strategy")
        )

    @extend_schema(parameters=[OpenApiParameter("strategy", int)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class OptimizationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Your optimisations (operators read all). The list leaves out the result rows, windows and equity."""

    def get_serializer_class(self):
        return OptimizationSummarySerializer if self.action == "list" else OptimizationSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Optimization.objects.none()
        return optimizations.api_optimizations(
            self.request.user, summary=self.action == "list", strategy_id=self.request.query_params.get("strategy")
        )

    @extend_schema(parameters=[OpenApiParameter("strategy", int)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class StrategyKindsView(APIView):
    @extend_schema(responses=KindSerializer(many=True), operation_id="strategy_kinds")
    def get(self, request: Request) -> Response:
        return Response(KindSerializer(services.kinds_catalogue(), many=True).data)


class PaperRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Your strategies trading on paper; the detail carries the drift report against a backtest."""

    def get_serializer_class(self):
        return PaperRunDetailSerializer if self.action == "retrieve" else PaperRunSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return PaperRun.objects.none()
        return selectors.paper_runs_for(self.request.user)

    @extend_schema(request=None, responses=PaperRunSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk=None) -> Response:
        run = self.get_object()
        services.stop_paper_run(run=run)
        return Response(PaperRunSerializer(run).data)
