"""The one socket: `/ws/v1/`."""

from django.urls import path

from .consumers import DeskConsumer

websocket_urlpatterns = [path("ws/v1/", DeskConsumer.as_asgi())]
