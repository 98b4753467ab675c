from django.urls import path

from . import views

app_name = "strategies"

urlpatterns = [
    path("strategies/", views.strategy_list_view, name="strategy-list"),
    path("strategies/new/", views.strategy_create_view, name="strategy-create"),
    path("strategies/<int:strategy_id>/", views.strategy_detail_view, name="strategy-detail"),
    path("strategies/<int:strategy_id>/edit/", views.strategy_edit_view, name="strategy-edit"),
    path("strategies/<int:strategy_id>/clone/", views.strategy_clone_view, name="strategy-clone"),
    path("strategies/<int:strategy_id>/backtests/", views.backtest_run_view, name="backtest-run"),
    path("backtests/<uuid:backtest_id>/", views.backtest_detail_view, name="backtest-detail"),
]
