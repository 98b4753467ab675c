"""The API docs pages: Swagger UI and ReDoc from this app's own assets, under the site's CSP plus what each needs."""

from csp.constants import NONCE
from csp.decorators import csp_update
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# ReDoc's bundle adds perfect-scrollbar's stylesheet as it loads, before the page can hand it the nonce: that one
# <style> is allowed by its hashes (as first inserted, empty, then filled). A new drf-spectacular-sidecar may change
# the text; the API docs browser test then fails on the console error naming the new hash.
REDOC_STYLE_HASHES = [
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
]

# Only these two pages run inline code, each block carrying the response's nonce; ReDoc's generated styles carry it
# too, and its search index runs in a worker it starts from a blob: URL.
swagger_ui = csp_update({"script-src": [NONCE]})(
    SpectacularSwaggerView.as_view(url_name="schema", template_name="api_docs/swagger_ui.html")
)
redoc = csp_update({"script-src": [NONCE], "style-src": [NONCE, *REDOC_STYLE_HASHES], "worker-src": ["blob:"]})(
    SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html")
)
