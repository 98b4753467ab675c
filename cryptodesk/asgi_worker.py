"""gunicorn's worker for the ASGI application: uvicorn, with the socket options `runserver` uses too.

`gunicorn cryptodesk.asgi:application -k cryptodesk.asgi_worker.DeskWorker`. Frames over 64 KB are refused by the
server before the application reads them (the consumer closes 1009 past WS_MAX_FRAME_BYTES); no per-message
compression: the desk's messages are small JSON, and compressing each costs CPU and about 40 KB a socket.
"""

import os

from uvicorn_worker import UvicornWorker

SOCKET_OPTIONS = {
    "ws": "websockets-sansio",
    "ws_max_size": int(os.environ.get("WS_MAX_FRAME_BYTES", 64 * 1024)),  # as cryptodesk.settings reads it
    "ws_per_message_deflate": False,
    "lifespan": "off",
}


class DeskWorker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, **SOCKET_OPTIONS}
