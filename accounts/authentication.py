"""API authentication: access JWTs that die with their device session."""

import math
import time
from datetime import timedelta

import jwt
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt import settings as simplejwt_settings
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.tokens import AccessToken

from cryptodesk.api.throttling import UserThrottle

from .models import User
from .services import SESSION_CLAIM, session_cache_keys, session_user

_VERIFIED_MAX = 4096
# (token, everything its verdict depends on) -> (claims, valid from, valid until): per process, bounded
_verified: dict[tuple, tuple[dict, float, float]] = {}


def decode_access_token(raw: str) -> dict:
    """The claims of a valid access token: one `jwt.decode` (signature, algorithm, expiry, audience), then its type.

    A token verified before in this process is not verified again while its time window surely holds: the same
    bytes under the same settings give the same verdict. Any doubt about the time goes back to `jwt.decode`.
    """
    api_settings = simplejwt_settings.api_settings  # replaced, not mutated, when SIMPLE_JWT changes
    algorithm = api_settings.ALGORITHM
    key = api_settings.SIGNING_KEY if algorithm.startswith("HS") else api_settings.VERIFYING_KEY
    leeway_s = _seconds(api_settings.LEEWAY)
    verdict_key = (
        raw,
        algorithm,
        key,
        api_settings.AUDIENCE,
        api_settings.ISSUER,
        leeway_s,
        api_settings.JTI_CLAIM,
        api_settings.TOKEN_TYPE_CLAIM,
    )
    verified = _verified.get(verdict_key)
    if verified is not None:
        claims, valid_from, valid_until = verified
        if valid_from <= time.time() < valid_until:
            return dict(claims)
    claims = _decode(raw, key=key, algorithm=algorithm, leeway_s=leeway_s)
    # jwt.decode refuses exp <= now - leeway and nbf or iat > now + leeway
    not_before = [int(claims[claim]) for claim in ("nbf", "iat") if claim in claims]
    valid_from = max(not_before) - leeway_s if not_before else -math.inf
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[verdict_key] = (claims, valid_from, int(claims["exp"]) + leeway_s)
    return dict(claims)


def _seconds(leeway: float | timedelta) -> float:
    return leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway)


def _decode(raw: str, *, key: str, algorithm: str, leeway_s: float) -> dict:
    api_settings = simplejwt_settings.api_settings
    required = ["exp", *(claim for claim in (api_settings.JTI_CLAIM, api_settings.TOKEN_TYPE_CLAIM) if claim)]
    try:
        claims = jwt.decode(
            raw,
            key,
            algorithms=[algorithm],
            audience=api_settings.AUDIENCE,
            issuer=api_settings.ISSUER,
            leeway=leeway_s,
            options={"require": required, "verify_aud": api_settings.AUDIENCE is not None},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("Token is expired.") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("Token is invalid.") from None
    if api_settings.TOKEN_TYPE_CLAIM and claims.get(api_settings.TOKEN_TYPE_CLAIM) != AccessToken.token_type:
        raise InvalidToken("Token has wrong type.")
    return claims


class SessionJWTAuthentication(BaseAuthentication):
    """`Authorization: Bearer <access JWT>`: a valid signature is not enough, its device session must be live and
    its user active.

    Both facts, and the user throttle's hit, come from the shared cache in one round trip once warm; a
    revocation overwrites them at once. `request.auth` is the token's claims.
    """

    www_authenticate_realm = "api"

    def authenticate(self, request: Request) -> tuple[User, dict] | None:
        api_settings = simplejwt_settings.api_settings
        header = request.META.get(api_settings.AUTH_HEADER_NAME)
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0] not in api_settings.AUTH_HEADER_TYPES:
            return None  # another scheme: another authenticator's business
        if len(parts) != 2:
            raise AuthenticationFailed(
                "Authorization header must contain two space-delimited values.", code="bad_authorization_header"
            )
        claims = decode_access_token(parts[1])
        return self.get_user(claims, request=request), claims

    def authenticate_header(self, request: Request) -> str:
        return f'{simplejwt_settings.api_settings.AUTH_HEADER_TYPES[0]} realm="{self.www_authenticate_realm}"'

    def get_user(self, claims: dict, *, request: Request | None = None) -> User:
        session_id = claims.get(SESSION_CLAIM)
        user_id = claims.get(simplejwt_settings.api_settings.USER_ID_CLAIM)
        if not session_id or not user_id:
            raise InvalidToken("Token is not bound to a session.")
        cached = None
        view = request.parser_context.get("view") if request is not None and request.parser_context else None
        if view is not None:
            # the session flag, the user and the user throttle's hit: one cache round trip
            keys = session_cache_keys(session_id=session_id, user_id=user_id)
            cached = UserThrottle.fetch_and_hit_for(request, view, user_id=user_id, keys=keys)
        user = session_user(session_id=session_id, user_id=user_id, cached=cached)
        if user is None:
            raise AuthenticationFailed("This session has ended. Log in again.", code="session_revoked")
        return user
