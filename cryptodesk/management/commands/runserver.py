"""`runserver` for the desk: ASGI with the socket, with no broker the beat schedule too, and it says when it answers.

It wraps the next `runserver` below this app in INSTALLED_APPS (whitenoise's, which wraps staticfiles'), keeping
Django's autoreloader, options, system checks and unapplied-migrations warning, and serves `ASGI_APPLICATION`
(pages, API and the `/ws/v1/` socket) through uvicorn with production's socket options. Under DEBUG or --insecure,
static files come from Django's ASGIStaticFilesHandler (not with --nostatic). `--wsgi` keeps Django's own WSGI
server: pages and API, no socket.

In the serving process (the autoreloader's child, never its parent; the only process with --noreload), once it
listens, it starts the in-process schedule (cryptodesk/scheduler.py) and, once a request to /health gets an
answer, prints one last line with the address and, in the demo, the demo login.
"""

import asyncio
import errno
import http.client
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from importlib import import_module

import uvicorn
from channels.routing import get_default_application
from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils import autoreload

from cryptodesk import scheduler
from cryptodesk.asgi_worker import SOCKET_OPTIONS

ANSWER_WITHIN_S = 60.0
RETRY_EVERY_S = 0.1
BIND_ERRORS = {  # Django's runserver's words
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}
# on top of LOGGING: requests are logged as any other line, uvicorn's own start and stop lines are not
UVICORN_LOGGING = {"version": 1, "incremental": True, "loggers": {"uvicorn.error": {"level": "WARNING"}}}


def _next_runserver():
    """The runserver command of the first app below this one that has one, else Django's own."""
    below = False
    for config in apps.get_app_configs():
        if config.name == "cryptodesk":
            below = True
        elif below:
            try:
                return import_module(f"{config.name}.management.commands.runserver").Command
            except (ImportError, AttributeError):
                continue
    return import_module("django.core.management.commands.runserver").Command


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_started()` once it listens: where Django's server calls `on_bind`."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            await asyncio.to_thread(self.on_started)  # plain code that may reach the ORM: off the event loop


class Command(_next_runserver()):
    help = (
        "Serves the desk for development: ASGI through uvicorn, with pages, API, the /ws/v1/ socket and, under DEBUG "
        "or --insecure, static files (not with --nostatic: whitenoise's then). --wsgi serves Django's own WSGI server "
        "instead: no socket, static files from whitenoise."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--wsgi",
            action="store_true",
            help="Serve WSGI with Django's own development server: pages and API, no /ws/v1/ socket.",
        )
        # not said: ASGI serves static files itself (whitenoise would hand Django a file iterator it buffers and
        # warns about), WSGI leaves them to whitenoise as before; --nostatic: to whitenoise in both
        parser.set_defaults(use_static_handler=None)
        parser.description = self.help  # not whitenoise's note: "always --nostatic" holds for --wsgi only

    def inner_run(self, *args, **options) -> None:
        """Django's inner_run, serving the ASGI application through uvicorn (or Django's own with --wsgi)."""
        if options["wsgi"]:
            super().inner_run(*args, **options)
            return
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            check_kwargs = BaseCommand.get_check_kwargs(self, options)
            check_kwargs["display_num_errors"] = True
            self.check(**check_kwargs)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        application = self.get_asgi_application(**options)
        family = socket.AF_INET6 if self.use_ipv6 else socket.AF_INET
        try:
            listener = socket.create_server((self.addr, int(self.port)), family=family)
        except OSError as error:
            self.stderr.write(f"Error: {BIND_ERRORS.get(error.errno, error)}")
            os._exit(1)  # sys.exit would end only the autoreloader's thread
        port = listener.getsockname()[1]
        config = uvicorn.Config(
            application,
            host=self.addr,
            port=port,
            log_config=UVICORN_LOGGING,
            **SOCKET_OPTIONS,  # production's
        )
        try:  # under the autoreloader this is not the main thread: uvicorn sets no signal handler, the reloader rules
            _Server(config, on_started=partial(self.on_bind, port)).run(sockets=[listener])
        except KeyboardInterrupt:  # --noreload: uvicorn stops on CONTROL-C, then raises it again
            if shutdown_message := options.get("shutdown_message", ""):
                self.stdout.write(shutdown_message)
            sys.exit(0)

    def get_asgi_application(self, **options):
        """ASGI_APPLICATION, behind Django's static files handler under DEBUG or --insecure, unless --nostatic."""
        application = get_default_application()
        if options["use_static_handler"] is not False and (settings.DEBUG or options["insecure_serving"]):
            return ASGIStaticFilesHandler(application)
        return application

    def on_bind(self, server_port: int) -> None:
        super().on_bind(server_port)
        if scheduler.start() is not None:
            moving = ": demo prices move every minute" if settings.DEMO_TICKER else ""
            self.stdout.write(f"Scheduled jobs run inside this server (no broker configured){moving}.")
        threading.Thread(
            target=self.announce_when_answering, args=(server_port,), name="cryptodesk-announce", daemon=True
        ).start()

    def _reachable_host(self) -> str:
        if self._raw_ipv6:
            return "::1" if self.addr == "::" else self.addr
        return "127.0.0.1" if self.addr in {"0", "0.0.0.0"} else self.addr  # noqa: S104 - what the server bound

    def announce_when_answering(self, port: int) -> None:
        """Print the address (and the demo login) once the server answers a request, not when it merely starts."""
        host = self._reachable_host()
        shown = f"[{host}]" if ":" in host else host
        url = f"{self.protocol}://{shown}:{port}/"
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while not self._answers(host, port):
            if time.monotonic() > deadline:
                self.stderr.write(f"CryptoDesk does not answer on {url} after {ANSWER_WITHIN_S:.0f} s.")
                return
            time.sleep(RETRY_EVERY_S)
        from accounts.selectors import demo_login

        try:
            login = demo_login()
        finally:
            connections.close_all()  # this thread's own connection
        line = f"CryptoDesk answers on {url}"
        if login is not None:
            line += f" — demo login: {login.email} / {login.password}"
        self.stdout.write(self.style.SUCCESS(line))

    def _answers(self, host: str, port: int) -> bool:
        connection = http.client.HTTPConnection(host, port, timeout=2)
        try:
            connection.request("GET", "/health")
            connection.getresponse().read()
        except OSError:
            return False
        finally:
            connection.close()
        return True
