from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("portfolios", views.PortfolioViewSet, basename="portfolio")
router.register("orders", views.OrderViewSet, basename="order")
router.register("trades", views.TradeViewSet, basename="trade")
router.register("watchlists", views.WatchlistViewSet, basename="watchlist")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = router.urls
