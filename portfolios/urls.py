from django.urls import path

from . import views

app_name = "portfolios"

urlpatterns = [
    path("dashboard/series/", views.dashboard_series_view, name="dashboard-series"),
    path("portfolios/", views.portfolio_list_view, name="portfolio-list"),
    path("portfolios/new/", views.portfolio_create_view, name="portfolio-create"),
    path("portfolios/<int:portfolio_id>/", views.portfolio_detail_view, name="portfolio-detail"),
    path("portfolios/<int:portfolio_id>/orders/", views.order_place_view, name="order-place"),
    path("portfolios/<int:portfolio_id>/orders/preview/", views.order_preview_view, name="order-preview"),
    path("portfolios/<int:portfolio_id>/transfers/", views.transfer_view, name="transfer"),
    path("orders/<uuid:order_id>/cancel/", views.order_cancel_view, name="order-cancel"),
    path("trade/<str:coin_id>/", views.trade_coin_view, name="trade"),
    path("trades/", views.trades_view, name="trades"),
    path("watchlists/", views.watchlists_view, name="watchlists"),
    path("watchlists/new/", views.watchlist_create_view, name="watchlist-create"),
    path("watchlists/watch/", views.watch_coin_view, name="watch"),
    path("watchlists/<int:watchlist_id>/rename/", views.watchlist_rename_view, name="watchlist-rename"),
    path("watchlists/<int:watchlist_id>/delete/", views.watchlist_delete_view, name="watchlist-delete"),
    path(
        "watchlists/<int:watchlist_id>/coins/<str:coin_id>/remove/",
        views.watchlist_remove_coin_view,
        name="watchlist-remove-coin",
    ),
    path("alerts/", views.alerts_view, name="alerts"),
    path("alerts/new/", views.alert_create_view, name="alert-create"),
    path("alerts/<int:alert_id>/toggle/", views.alert_toggle_view, name="alert-toggle"),
    path("alerts/<int:alert_id>/delete/", views.alert_delete_view, name="alert-delete"),
    path("notifications/", views.notifications_view, name="notifications"),
    path("notifications/read-all/", views.notifications_read_all_view, name="notifications-read-all"),
    path("notifications/<int:notification_id>/read/", views.notification_read_view, name="notification-read"),
]
