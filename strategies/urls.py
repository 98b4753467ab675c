from django.urls import path

from . import views

app_name = "strategies"

urlpatterns = [
    path("strategies/", views.strategy_list_view, name="strategy-list"),
    path("strategies/new/", views.strategy_create_view, name="strategy-create"),
    path("strategies/<int:strategy_id>/", views.strategy_detail_view, name="strategy-detail"),
    path("strategies/<int:strategy_id>/edit/", views.strategy_edit_view, name="strategy-edit"),
    path("strategies/<int:strategy_id>/clone/", views.strategy_clone_view, name="strategy-clone"),
    path("strategies/<int:strategy_id>/delete/", views.strategy_delete_view, name="strategy-delete"),
    path("strategies/<int:strategy_id>/backtests/", views.backtest_run_view, name="backtest-run"),
    path("backtests/<uuid:backtest_id>/", views.backtest_detail_view, name="backtest-detail"),
    path("strategies/<int:strategy_id>/optimize/", views.optimization_create_view, name="optimization-create"),
    path("optimizations/<uuid:optimization_id>/", views.optimization_detail_view, name="optimization-detail"),
    path("strategies/<int:strategy_id>/paper/", views.paper_run_start_view, name="paper-run-start"),
    path("paper-runs/", views.paper_run_list_view, name="paper-run-list"),
    path("paper-runs/<uuid:run_id>/", views.paper_run_detail_view, name="paper-run-detail"),
    path("paper-runs/<uuid:run_id>/stop/", views.paper_run_stop_view, name="paper-run-stop"),
]
