from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("strategies", views.StrategyViewSet, basename="strategy")
router.register("backtests", views.BacktestViewSet, basename="backtest")
router.register("optimizations", views.OptimizationViewSet, basename="optimization")
router.register("paper-runs", views.PaperRunViewSet, basename="paper-run")

urlpatterns = [path("strategy-kinds/", views.StrategyKindsView.as_view(), name="strategy-kinds"), *router.urls]
