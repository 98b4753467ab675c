"""CryptoDesk settings: one env-driven module; production differs by environment values only."""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.management.utils import get_random_secret_key

from .env import config_error, env_bool, env_duration, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent

# --- core -------------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", default=False)


def _development_secret_key(path: Path) -> str:
    """One key for every process of a development checkout: made once, then read from a git-ignored file.

    A key per process would make each worker reject the sessions and tokens the others signed.
    """
    try:
        if not path.exists():
            draft = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(get_random_secret_key() + "\n")
            try:
                os.link(draft, path)  # atomic: the first process wins, the others read its key
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        key = path.read_text().strip()
    except OSError as exc:
        config_error("SECRET_KEY", f"is not set and {path} cannot be used ({exc.strerror})")
    if len(key) < 32:
        config_error("SECRET_KEY", f"is not set and {path} holds no usable key (delete it to make a new one)")
    return key


SECRET_KEY = os.environ.get("SECRET_KEY") or (
    _development_secret_key(Path(os.environ.get("SECRET_KEY_FILE") or BASE_DIR / ".secret_key"))
    if DEBUG
    else config_error("SECRET_KEY", "is required when DEBUG is off")
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=["http://localhost:8000", "http://127.0.0.1:8000"])
for _origin in CSRF_TRUSTED_ORIGINS:
    if "://" not in _origin:
        config_error("CSRF_TRUSTED_ORIGINS", "must list origins with a scheme (https://example.com)")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "cryptodesk",  # before whitenoise and staticfiles: its runserver wraps theirs (see its module)
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "accounts",
    "market",
    "portfolios",
    "strategies",
    "channels",  # plain channels: the project's own runserver stays in charge of `make run`
    "cryptodesk.realtime",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cryptodesk.api.middleware.ApiEdgeMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.DeviceSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cryptodesk.api.middleware.CSPMiddleware",
]

ROOT_URLCONF = "cryptodesk.urls"
WSGI_APPLICATION = "cryptodesk.wsgi.application"
ASGI_APPLICATION = "cryptodesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "portfolios.context_processors.notifications",
                "cryptodesk.context_processors_live.live_socket",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------------
try:
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", default=60),
            conn_health_checks=True,
        )
    }
except ValueError:
    config_error("DATABASE_URL", "is not a valid database URL")  # never echo it: it holds a password
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "cryptodesk.db.sqlite3"  # decimals keep every digit (see its docstring)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, broker ------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    config_error("REDIS_URL", "must start with redis://, rediss:// or unix://")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "cryptodesk"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Nothing to reach: an eager send still builds a producer, and with no URL kombu warns it falls back to localhost.
    CELERY_BROKER_URL = "memory://localhost/"
# No broker, so no beat: the development server runs CELERY_BEAT_SCHEDULE itself (cryptodesk/scheduler.py).
RUN_SCHEDULE_IN_PROCESS = env_bool("RUN_SCHEDULE_IN_PROCESS", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# backtests are long and CPU-bound: their own queue, so a burst of them never delays syncs and fills
CELERY_TASK_ROUTES = {"strategies.tasks.run_backtest_task": {"queue": "backtests"}}
CELERY_TASK_ROUTES["strategies.tasks.run_optimization_task"] = {"queue": "backtests"}
BACKTEST_MAX_ACTIVE_PER_USER = env_int("BACKTEST_MAX_ACTIVE_PER_USER", default=3, minimum=1)
OPTIMIZE_MAX_COMBINATIONS = env_int("OPTIMIZE_MAX_COMBINATIONS", default=2000, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "reap-backtests": {
        "task": "strategies.tasks.reap_backtests_task",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    "purge-expired-sessions": {
        "task": "accounts.tasks.purge_expired_sessions_task",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
    "sync-markets": {
        "task": "market.tasks.sync_markets_task",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    "sync-trending-global": {
        "task": "market.tasks.sync_trending_and_global_task",
        "schedule": crontab(minute="2-59/15"),
        "options": {"expires": 10 * 60},
    },
    "backfill-history": {
        "task": "market.tasks.backfill_history_task",
        "schedule": crontab(minute=7),
        "options": {"expires": 50 * 60},
    },
    "fetch-logos": {
        "task": "market.tasks.fetch_logos_task",
        "schedule": crontab(minute=12),
        "options": {"expires": 50 * 60},
    },
    "market-retention": {
        "task": "market.tasks.apply_retention_task",
        "schedule": crontab(hour=3, minute=33),
        "options": {"expires": 6 * 3600},
    },
    "snapshot-portfolios": {
        "task": "portfolios.tasks.snapshot_portfolios_task",
        "schedule": crontab(hour=23, minute=55),
        "options": {"expires": 3 * 3600},
    },
    "demo-ticker": {  # does nothing unless DEMO_TICKER is on
        "task": "market.tasks.demo_tick_task",
        "schedule": crontab(),
        "options": {"expires": 50},
    },
    "relay-outbox": {
        "task": "cryptodesk.tasks.relay_outbox_task",
        "schedule": crontab(),
        "options": {"expires": 50},
    },
}

SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- auth -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", default=3600, minimum=60)
EMAIL_VERIFICATION_TIMEOUT = env_int("EMAIL_VERIFICATION_TIMEOUT", default=3 * 86400, minimum=60)
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", default=5, minimum=1)
LOGIN_FAILURE_WINDOW_S = env_int("LOGIN_FAILURE_WINDOW_S", default=60, minimum=1)
NUM_PROXIES = env_int("NUM_PROXIES", default=0)  # trusted proxies that append to X-Forwarded-For

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": False,
    "LEEWAY": 0,
}

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.SessionJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "cryptodesk.api.negotiation.SingleRendererNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "cryptodesk.api.parsers.DecimalJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "cryptodesk.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["cryptodesk.api.throttling.AnonThrottle", "cryptodesk.api.throttling.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("THROTTLE_ANON", "120/min"),
        "user": os.environ.get("THROTTLE_USER", "1200/min"),
        "auth": os.environ.get("THROTTLE_AUTH", "30/min"),
    },
    "EXCEPTION_HANDLER": "cryptodesk.api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "NUM_PROXIES": NUM_PROXIES or None,
}
API_MAX_BODY_BYTES = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

SPECTACULAR_SETTINGS = {
    "TITLE": "CryptoDesk API",
    "DESCRIPTION": "Market data, paper trading and strategy backtests for your own crypto desk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # no deep-link anchors inside Swagger UI's operation buttons (a link nested in a button); ReDoc keeps deep links.
    # Examples in plain text: every highlighting theme has colours that fall short of 4.5:1 on its background.
    "SWAGGER_UI_SETTINGS": {"deepLinking": False, "syntaxHighlight": False},
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.User.Role",
        "ProfileCurrencyEnum": "accounts.models.User.Currency",
        "PortfolioCurrencyEnum": "portfolios.models.Portfolio.Currency",
        "OrderSideEnum": "portfolios.models.Order.Side",
        "OrderStatusEnum": "portfolios.models.Order.Status",
        "OrderTypeEnum": "portfolios.models.Order.Type",
        "SyncRunStatusEnum": "market.models.SyncRun.Status",
        "BacktestStatusEnum": "strategies.models.Backtest.Status",
        "PaperRunStatusEnum": "strategies.models.PaperRun.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cryptodesk.api.schema.add_problem_responses",
    ],
}

CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", default=["http://localhost:8000"])
CORS_URLS_REGEX = r"^/api/.*$"

# --- security ----------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS >= 31536000)
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^health"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_SECONDS else ["security.W004"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# --- email ------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "CryptoDesk <no-reply@cryptodesk.local>")
_email_url = os.environ.get("EMAIL_URL", "").strip()
if _email_url:
    _parts = urlsplit(_email_url)
    if _parts.scheme not in {"smtp", "smtps", "console", "locmem"} or (
        _parts.scheme.startswith("smtp") and not _parts.hostname
    ):
        config_error("EMAIL_URL", "must look like smtp://user:password@host:587?tls=1, smtps://… or console://")
    if _parts.scheme in {"console", "locmem"}:
        EMAIL_BACKEND = f"django.core.mail.backends.{_parts.scheme}.EmailBackend"
    else:
        _query = parse_qs(_parts.query)
        EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        EMAIL_HOST = _parts.hostname
        EMAIL_PORT = _parts.port or (465 if _parts.scheme == "smtps" else 587)
        EMAIL_HOST_USER = unquote(_parts.username or "")
        EMAIL_HOST_PASSWORD = unquote(_parts.password or "")
        EMAIL_USE_SSL = _parts.scheme == "smtps"
        EMAIL_USE_TLS = not EMAIL_USE_SSL and _query.get("tls", ["1"])[0] in {"1", "true"}
else:
    EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)

# --- market data ------------------------------------------------------------------------------
COINGECKO_BASE_URL = os.environ.get("COINGECKO_BASE_URL", "https://api.coingecko.com/api/v3").rstrip("/")
if not COINGECKO_BASE_URL.startswith(("http://", "https://")):
    config_error("COINGECKO_BASE_URL", "must be an http(s) URL")
COINGECKO_API_KEY = os.environ.get("COINGECKO_API_KEY", "")
COINGECKO_API_PLAN = os.environ.get("COINGECKO_API_PLAN", "demo").strip().lower()
if COINGECKO_API_PLAN not in {"demo", "pro"}:
    config_error("COINGECKO_API_PLAN", "must be demo or pro")
COINGECKO_CALLS_PER_MINUTE = env_int("COINGECKO_CALLS_PER_MINUTE", default=30, minimum=1)
MARKET_STALE_AFTER = env_duration("MARKET_STALE_AFTER", default="15m")
PAPER_FEE_BPS = env_int("PAPER_FEE_BPS", default=10)
if PAPER_FEE_BPS > 10_000:
    config_error("PAPER_FEE_BPS", "must be at most 10000 (100 %)")
PAPER_ALLOW_STALE_PRICES = env_bool("PAPER_ALLOW_STALE_PRICES", default=DEBUG)  # the demo trades on demo prices
MARKET_SYNC_TOP_N = env_int("MARKET_SYNC_TOP_N", default=250, minimum=1)
MARKET_HISTORY_TOP_N = env_int("MARKET_HISTORY_TOP_N", default=20, minimum=1)
MARKET_KEEP_FINE_DAYS = env_int("MARKET_KEEP_FINE_DAYS", default=2, minimum=1)
MARKET_KEEP_HOURLY_DAYS = env_int("MARKET_KEEP_HOURLY_DAYS", default=90, minimum=2)
DEMO_TICKER = env_bool("DEMO_TICKER", default=DEBUG)  # the demo's prices move; real quotes are never touched

# --- real time ---------------------------------------------------------------------------------
# One socket, /ws/v1/ (cryptodesk/realtime, docs/realtime.md). Redis pub/sub layer whenever REDIS_URL is set, under
# its own prefix so the cache's keys and the layer's never meet; in-memory otherwise (one process, `make run`).
# Pub/sub: a group message is published once and each web process hands it to its own sockets in memory; the list
# layer (channels_redis.core) would push one copy per socket, four Redis round trips each to receive.
WS_CHANNEL_PREFIX = os.environ.get("WS_CHANNEL_PREFIX", "cryptodesk-ws")
# the in-memory layer's bound per socket; prices and values coalesce per coin and portfolio in the socket anyway
WS_CHANNEL_CAPACITY = env_int("WS_CHANNEL_CAPACITY", default=1000, minimum=10)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": WS_CHANNEL_PREFIX},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": WS_CHANNEL_CAPACITY}}
    }
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", default=10, minimum=1)
WS_AUTH_TIMEOUT_MS = env_int("WS_AUTH_TIMEOUT_MS", default=5000, minimum=1)  # no auth by then: close 4408
WS_SESSION_CHECK_MS = env_int("WS_SESSION_CHECK_MS", default=5000, minimum=1)  # a revoked session closes 4401
WS_MESSAGES_PER_WINDOW = env_int("WS_MESSAGES_PER_WINDOW", default=20, minimum=1)  # more: close 4429
WS_MESSAGE_WINDOW_MS = env_int("WS_MESSAGE_WINDOW_MS", default=10_000, minimum=1)
WS_MAX_FRAME_BYTES = env_int("WS_MAX_FRAME_BYTES", default=64 * 1024, minimum=1024)  # larger: close 1009
WS_MAX_COINS = 250

# --- i18n, static -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- logging ------------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "cryptodesk.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
if CELERY_TASK_ALWAYS_EAGER:  # tasks run inside requests and the in-process schedule: a success is no news there
    LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}
