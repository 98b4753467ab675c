"""Operators' view of paper trading: portfolios with their holdings, orders, trades, alerts."""

from django.contrib import admin

from .models import Alert, CashTransfer, Holding, Notification, Order, Portfolio, PortfolioSnapshot, Trade, Watchlist


class HoldingInline(admin.TabularInline):
    model = Holding
    extra = 0
    can_delete = False
    readonly_fields = ["coin", "quantity", "reserved_quantity", "average_cost", "realized_pnl", "updated_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Portfolio)
class PortfolioAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "cash", "reserved_cash", "starting_cash", "created_at"]
    search_fields = ["name", "owner__email"]
    list_select_related = ["owner"]
    readonly_fields = ["cash", "reserved_cash", "starting_cash"]  # money moves through services only
    inlines = [HoldingInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "portfolio",
        "coin",
        "side",
        "type",
        "quantity",
        "limit_price",
        "status",
        "filled_price",
        "created_at",
    ]
    list_filter = ["status", "side", "type"]
    search_fields = ["portfolio__owner__email", "coin__id"]
    list_select_related = ["portfolio"]
    readonly_fields = [field.name for field in Order._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Trade)
class TradeAdmin(admin.ModelAdmin):
    list_display = ["executed_at", "portfolio", "coin", "side", "quantity", "price", "fee", "realized_pnl"]
    list_filter = ["side"]
    search_fields = ["portfolio__owner__email", "coin__id"]
    list_select_related = ["portfolio"]
    readonly_fields = [field.name for field in Trade._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CashTransfer)
class CashTransferAdmin(admin.ModelAdmin):
    list_display = ["created_at", "portfolio", "kind", "amount"]
    list_filter = ["kind"]
    readonly_fields = [field.name for field in CashTransfer._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(admin.ModelAdmin):
    list_display = ["date", "portfolio", "total_value", "net_flow"]
    list_select_related = ["portfolio"]


@admin.register(Watchlist)
class WatchlistAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "created_at"]
    search_fields = ["name", "owner__email"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["owner", "coin", "condition", "threshold", "is_active", "is_met", "last_triggered_at"]
    list_filter = ["condition", "is_active", "is_met"]
    search_fields = ["owner__email", "coin__id"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "kind", "title", "read_at"]
    list_filter = ["kind"]
    search_fields = ["user__email", "title"]
