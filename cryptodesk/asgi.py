"""ASGI entry point: `cryptodesk.asgi:application`: pages and API over HTTP, the `/ws/v1/` socket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cryptodesk.settings")

django_application = get_asgi_application()  # first: it sets Django up before the socket code imports models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from cryptodesk.realtime.auth import SocketAuthStack  # noqa: E402
from cryptodesk.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # cookies count only from this site's own pages; a token client may send any Origin, or none
        "websocket": SocketAuthStack(URLRouter(websocket_urlpatterns)),
    }
)
