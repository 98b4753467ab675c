"""Test settings: the real services from the environment, fast hashing, captured email."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
os.environ.setdefault("CSRF_COOKIE_SECURE", "0")
os.environ.setdefault("THROTTLE_ANON", "100000/min")
os.environ.setdefault("THROTTLE_USER", "100000/min")
os.environ.setdefault("THROTTLE_AUTH", "100000/min")
os.environ.setdefault("DEMO_TICKER", "0")  # even under DEBUG=1: a test moves demo prices only when it says so

from .settings import *  # noqa: F403
from .settings import CACHES, STORAGES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# Each xdist worker gets its own cache namespace so parallel runs never see each other's counters.
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = f"cryptodesk-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
# Sockets: each xdist worker has its own channel-layer namespace; short waits keep the socket tests fast.
WS_CHANNEL_PREFIX = f"cryptodesk-ws-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
if "prefix" in CHANNEL_LAYERS["default"].get("CONFIG", {}):  # noqa: F405
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = WS_CHANNEL_PREFIX  # noqa: F405
