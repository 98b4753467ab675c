"""Operators' view of strategies, their backtests and optimisations."""

from django.contrib import admin

from .models import Backtest, Optimization, Strategy


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "kind", "coin", "timeframe", "visibility", "updated_at"]
    list_filter = ["kind", "timeframe", "visibility"]
    search_fields = ["name", "owner__email", "coin__id"]
    list_select_related = ["owner", "coin"]
    raw_id_fields = ["cloned_from"]


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = ["id", "strategy", "owner", "status", "progress", "start", "end", "bars", "created_at"]
    list_filter = ["status", "kind", "timeframe"]
    search_fields = ["strategy__name", "owner__email"]
    list_select_related = ["strategy", "owner"]
    exclude = ["equity_curve", "trades"]  # large: read them through the API or the results page
    readonly_fields = [f.name for f in Backtest._meta.fields if f.name not in {"equity_curve", "trades"}]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Optimization)
class OptimizationAdmin(admin.ModelAdmin):
    list_display = ["id", "strategy", "owner", "status", "progress", "objective", "combinations", "bars", "created_at"]
    list_filter = ["status", "kind", "objective", "timeframe"]
    search_fields = ["strategy__name", "owner__email"]
    list_select_related = ["strategy", "owner"]
    exclude = ["results", "windows", "oos_equity"]  # large: read them through the API or the results page
    readonly_fields = [f.name for f in Optimization._meta.fields if f.name not in {"results", "windows", "oos_equity"}]

    def has_add_permission(self, request) -> bool:
        return False
