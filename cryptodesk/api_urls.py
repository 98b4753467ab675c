"""/api/v1/: every app's API routes, one prefix."""

from django.urls import include, path, re_path

from .views import api_not_found

app_name = "api"

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("", include("market.api.urls")),
    path("", include("portfolios.api.urls")),
    path("", include("strategies.api.urls")),
    re_path(r"^.*$", api_not_found),  # last: anything else under /api/v1/ is a problem-details 404
]
