from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("coins", views.CoinViewSet, basename="coin")

urlpatterns = [
    *router.urls,
    path("market/top/<str:category>/", views.TopView.as_view(), name="market-top"),
    path("market/trending/", views.TrendingView.as_view(), name="market-trending"),
    path("market/global/", views.GlobalView.as_view(), name="market-global"),
    path("market/sync/", views.SyncView.as_view(), name="market-sync"),
    path("market/sync-runs/", views.SyncRunListView.as_view(), name="market-sync-runs"),
]
