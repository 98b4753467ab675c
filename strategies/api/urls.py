from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("strategies", views.StrategyViewSet, basename="strategy")
router.register("backtests", views.BacktestViewSet, basename="backtest")

urlpatterns = [path("strategy-kinds/", views.StrategyKindsView.as_view(), name="strategy-kinds"), *router.urls]
