from django.urls import path

from . import views

app_name = "market"

urlpatterns = [
    path("markets/", views.markets_view, name="coin-list"),
    path("markets/<str:coin_id>/", views.coin_detail_view, name="coin-detail"),
    path("coins/<str:coin_id>/logo/", views.coin_logo_view, name="coin-logo"),
]
