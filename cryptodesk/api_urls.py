"""/api/v1/: every app's API routes, one prefix.

The apps' route lists are spliced in, not included: one resolver level fewer on every API request, and the
same names under the `api` namespace.
"""

from django.urls import re_path

from accounts.api import urls as accounts_urls
from market.api import urls as market_urls
from portfolios.api import urls as portfolios_urls
from strategies.api import urls as strategies_urls

from .views import api_not_found

app_name = "api"

urlpatterns = [
    *accounts_urls.urlpatterns,
    *market_urls.urlpatterns,
    *portfolios_urls.urlpatterns,
    *strategies_urls.urlpatterns,
    re_path(r"^.*$", api_not_found),  # last: anything else under /api/v1/ is a problem-details 404
]
