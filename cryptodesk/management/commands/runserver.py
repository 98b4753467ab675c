"""`runserver` for the desk: with no broker it runs the beat schedule too, and it says when it really answers.

It wraps the next `runserver` below this app in INSTALLED_APPS (whitenoise's, which wraps staticfiles'), so it
only adds: in the serving process (the autoreloader's child, never its parent; the only process with
--noreload) it starts the in-process schedule (cryptodesk/scheduler.py) and, once a request to /health gets an
answer, prints one last line with the address and, in the demo, the demo login.
"""

import http.client
import threading
import time
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.db import connections

from cryptodesk import scheduler

ANSWER_WITHIN_S = 60.0
RETRY_EVERY_S = 0.1


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


class Command(_next_runserver()):
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
