from django.urls import path

from . import views

app_name = "market"

urlpatterns = [
    path("markets/", views.markets_view, name="coin-list"),
    path("markets/<str:coin_id>/", views.coin_detail_view, name="coin-detail"),
    path("markets/<str:coin_id>/chart/", views.coin_chart_view, name="coin-chart"),
    path("coins/<str:coin_id>/logo/", views.coin_logo_view, name="coin-logo"),
]
