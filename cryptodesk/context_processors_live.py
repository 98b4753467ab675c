"""The live socket's address for pages that can use it: served over ASGI, to a signed-in user."""

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest

SOCKET_PATH = "/ws/v1/"


def live_socket(request: HttpRequest) -> dict:
    # under WSGI nothing answers the socket: the page polls as before and never tries one
    if not isinstance(request, ASGIRequest):
        return {}
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"live_socket_url": SOCKET_PATH}
