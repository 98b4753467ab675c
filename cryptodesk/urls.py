"""Top-level routes: browser pages, the versioned API, its docs, health and the admin."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from accounts import views as account_views
from portfolios import views as portfolio_views

from . import views
from .api import docs as api_docs

urlpatterns = [
    path("health", views.health, name="health"),
    path("health/", views.health),
    path("health/ready", views.health_ready, name="health-ready"),
    path("health/ready/", views.health_ready),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs.swagger_ui, name="swagger-ui"),
    path("api/redoc/", api_docs.redoc, name="redoc"),
    path("api/v1/", include("cryptodesk.api_urls")),
    re_path(r"^api/", views.api_not_found),
    path("", account_views.home, name="home"),
    path("dashboard/", portfolio_views.dashboard_view, name="dashboard"),
    path("", include("accounts.urls")),
    path("", include("market.urls")),
    path("", include("portfolios.urls")),
    path("", include("strategies.urls")),
]

handler400 = "cryptodesk.views.bad_request"
handler403 = "cryptodesk.views.permission_denied"
handler404 = "cryptodesk.views.page_not_found"
handler500 = "cryptodesk.views.server_error"
