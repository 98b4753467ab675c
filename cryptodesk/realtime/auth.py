"""Who is on a socket: the browser's session cookie (same-origin only) or an access JWT sent as the first message."""

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

from accounts.authentication import SessionJWTAuthentication, decode_access_token
from accounts.middleware import BROWSER_SESSION_KEY
from accounts.services import SESSION_CLAIM, is_session_active


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def is_same_origin(scope) -> bool:
    """The handshake's Origin is this site (its Host, an allowed host) or a trusted origin: cookies may count."""
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin or not host:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    parts = urlsplit(origin)
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    return parts.scheme in {"http", "https"} and parts.netloc.lower() == host.lower()


class SameOriginCookieMiddleware:
    """Drop the cookies of a handshake from another origin (or none): a page elsewhere cannot ride the session.

    Such a socket may still authenticate with a token as its first message.
    """

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not is_same_origin(scope):
            scope = {**scope, "headers": [(key, value) for key, value in scope["headers"] if key != b"cookie"]}
        return await self.inner(scope, receive, send)


def SocketAuthStack(inner):  # named like channels' AuthMiddlewareStack, which it wraps
    return SameOriginCookieMiddleware(AuthMiddlewareStack(inner))


class TokenRejected(Exception):
    """The token of an `auth` message is invalid, expired, or its session has ended."""


@database_sync_to_async
def cookie_identity(scope) -> tuple[object, str] | None:
    """(user, device session id) of a live browser session; a revoked device session is no session."""
    user = scope.get("user")
    if user is None or not user.is_authenticated:
        return None
    session_id = scope["session"].get(BROWSER_SESSION_KEY)
    if session_id is None or not is_session_active(session_id):
        return None
    return user, str(session_id)


@database_sync_to_async
def token_identity(token: object) -> tuple[object, str]:
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenRejected("token must be an access JWT")
    try:
        claims = decode_access_token(token)
        user = SessionJWTAuthentication().get_user(claims)
    except (InvalidToken, AuthenticationFailed):
        raise TokenRejected("token is invalid or its session has ended") from None
    return user, str(claims[SESSION_CLAIM])


@database_sync_to_async
def session_is_live(session_id: str) -> bool:
    return is_session_active(session_id)
