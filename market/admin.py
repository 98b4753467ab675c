"""Operators' view of market data: coins, quotes, sync runs with their errors, and "sync now"."""

from django.contrib import admin, messages

from cryptodesk.errors import DomainError

from . import services
from .models import Coin, GlobalStats, PricePoint, Quote, SyncRun, TrendingCoin


class QuoteInline(admin.StackedInline):
    model = Quote
    can_delete = False
    readonly_fields = [field.name for field in Quote._meta.fields]
    extra = 0


@admin.register(Coin)
class CoinAdmin(admin.ModelAdmin):
    list_display = ["id", "symbol", "name", "market_cap_rank", "source"]
    search_fields = ["id", "symbol", "name"]
    list_filter = ["source"]
    ordering = ["market_cap_rank"]
    inlines = [QuoteInline]


@admin.register(PricePoint)
class PricePointAdmin(admin.ModelAdmin):
    list_display = ["coin", "ts", "price", "market_cap", "total_volume"]
    search_fields = ["coin__id"]
    raw_id_fields = ["coin"]
    show_full_result_count = False  # no COUNT(*) over millions of points
    list_select_related = ["coin"]


@admin.register(GlobalStats)
class GlobalStatsAdmin(admin.ModelAdmin):
    list_display = ["as_of", "total_market_cap", "total_volume", "btc_dominance", "source"]


@admin.register(TrendingCoin)
class TrendingCoinAdmin(admin.ModelAdmin):
    list_display = ["rank", "coin", "score", "as_of"]
    list_select_related = ["coin"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "created_at",
        "finished_at",
        "records_ok",
        "records_skipped",
        "points_written",
        "api_calls",
        "short_error",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [field.name for field in SyncRun._meta.fields]
    actions = ["sync_now"]
    list_select_related = ["requested_by"]

    @admin.display(description="error")
    def short_error(self, run: SyncRun) -> str:
        return run.error[:80]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Sync markets now")
    def sync_now(self, request, queryset) -> None:
        try:
            run, _ = services.request_sync(requested_by=request.user)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.WARNING)
        else:
            self.message_user(request, f"Market sync #{run.pk} queued.", messages.SUCCESS)
