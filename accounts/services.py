"""Account writes: registration, device sessions and their tokens, verification, passwords."""

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from importlib import import_module

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from ua_parser import parse as parse_user_agent

from cryptodesk.errors import Conflict, DomainError

from .models import DeviceSession, User
from .throttling import take_login_slot
from .tokens import make_email_verification_token, make_password_reset_token, read_email_verification_token

SESSION_CLAIM = "sid"
_ACTIVE_CACHE_S = 15 * 60  # as long as an access token lives


class InvalidCredentials(DomainError):
    status = 401
    slug = "invalid-credentials"
    title = "Invalid credentials"


class LoginThrottled(DomainError):
    status = 429
    slug = "throttled"
    title = "Too many failed logins"


class InvalidRefreshToken(DomainError):
    status = 401
    slug = "invalid-token"
    title = "Invalid or expired token"


class InvalidLink(DomainError):
    slug = "invalid-token"
    title = "Invalid or expired link"


@dataclass(frozen=True)
class Client:
    """Who is asking: what the device says about itself and where it connects from."""

    user_agent: str = ""
    ip: str | None = None

    @property
    def device(self) -> str:
        if not self.user_agent:
            return "Unknown device"
        parsed = parse_user_agent(self.user_agent[:512])
        agent = parsed.user_agent.family if parsed.user_agent else None
        system = parsed.os.family if parsed.os else None
        if agent and system and system != "Other":
            return f"{agent} on {system}"[:120]
        return (agent or self.user_agent.split(" ", 1)[0])[:120]


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    session: DeviceSession


# --- login ------------------------------------------------------------------------------------


def authenticate_login(*, email: str, password: str, client: Client, request=None) -> User:
    """Check a password under the login throttle: 5 failures a minute per account and per address."""
    slot = take_login_slot(email=email, ip=client.ip)
    if not slot.allowed:
        raise LoginThrottled(
            f"Too many failed logins. Try again in {slot.retry_after_s} seconds.",
            headers={"Retry-After": str(slot.retry_after_s)},
        )
    user = authenticate(request, email=email, password=password)
    if user is None:
        raise InvalidCredentials("Email or password is not correct.")
    slot.release()
    return user


# --- registration and profile -------------------------------------------------------------------


def _email_taken() -> Exception:
    return ValidationError({"email": ["An account with this email address already exists."]})


def validate_new_password(password: str, *, user: User | None = None, field: str = "password") -> None:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from None


@transaction.atomic
def register_user(*, email: str, password: str, display_name: str = "", base_url: str) -> User:
    email = User.objects.normalize_email_address(email)
    candidate = User(email=email, display_name=display_name)
    errors: dict[str, list[str]] = {}
    try:
        validate_new_password(password, user=candidate)
    except ValidationError as exc:
        errors.update(exc.detail)
    if User.objects.filter(email__iexact=email).exists():
        errors.update(_email_taken().detail)
    if errors:
        raise ValidationError(errors)  # every problem at once, each beside its field
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:  # a concurrent registration won the race
        raise _email_taken() from None
    transaction.on_commit(partial(send_verification_email, user_id=candidate.pk, base_url=base_url))
    return candidate


@transaction.atomic
def update_profile(*, user: User, base_url: str, **changes) -> User:
    email = changes.pop("email", None)
    for field, value in changes.items():
        setattr(user, field, value)
    email_changed = email is not None and User.objects.normalize_email_address(email) != user.email
    if email_changed:
        email = User.objects.normalize_email_address(email)
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise _email_taken()
        user.email, user.email_verified = email, False
    user.full_clean(exclude=["password"])
    user.save()
    if email_changed:
        transaction.on_commit(partial(send_verification_email, user_id=user.pk, base_url=base_url))
    return user


@transaction.atomic
def delete_account(*, user: User) -> None:
    revoke_sessions(user=user, reason="account deleted")
    user.delete()


@transaction.atomic
def deactivate_user(*, user: User) -> None:
    """Operators' switch: the account can no longer log in and every session dies now."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    forget_user(user.pk)
    user.is_active = False
    revoke_sessions(user=user, reason="account deactivated")


# --- email ------------------------------------------------------------------------------------


def _send(*, to: str, subject: str, template: str, context: dict) -> None:
    body = render_to_string(template, context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])


def send_verification_email(*, user_id: int, base_url: str) -> None:
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or user.email_verified:
        return
    link = f"{base_url.rstrip('/')}/verify-email/?token={make_email_verification_token(user)}"
    _send(
        to=user.email,
        subject="Confirm your CryptoDesk email address",
        template="accounts/email/verify_email.txt",
        context={"user": user, "link": link, "hours": settings.EMAIL_VERIFICATION_TIMEOUT // 3600},
    )


def resend_verification_email(*, user: User, base_url: str) -> None:
    if user.email_verified:
        raise Conflict("Your email address is already verified.")
    send_verification_email(user_id=user.pk, base_url=base_url)


@transaction.atomic
def verify_email(*, token: str) -> User:
    claims = read_email_verification_token(token)
    if claims is None:
        raise InvalidLink("This verification link is invalid or has expired.", field="token")
    user_id, email = claims
    # Single use: the conditional update succeeds once, for the address the token was made for.
    updated = User.objects.filter(pk=user_id, email=email, email_verified=False, is_active=True).update(
        email_verified=True
    )
    forget_user(user_id)
    if not updated:
        raise InvalidLink("This verification link has already been used or is no longer valid.", field="token")
    return User.objects.get(pk=user_id)


def request_password_reset(*, email: str, base_url: str) -> None:
    """Sends a reset link if the account exists; says nothing either way."""
    user = User.objects.filter(email__iexact=User.objects.normalize_email_address(email), is_active=True).first()
    if user is None:
        return
    uid, token = make_password_reset_token(user)
    _send(
        to=user.email,
        subject="Reset your CryptoDesk password",
        template="accounts/email/password_reset.txt",
        context={
            "user": user,
            "link": f"{base_url.rstrip('/')}/password/reset/{uid}/{token}/",
            "uid": uid,
            "token": token,
            "minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
        },
    )


@transaction.atomic
def reset_password(*, user: User, new_password: str) -> None:
    validate_new_password(new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    revoke_sessions(user=user, reason="password reset")


@transaction.atomic
def change_password(*, user: User, old_password: str, new_password: str, keep_session_id=None) -> None:
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Your current password is not correct."]})
    validate_new_password(new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    revoke_sessions(user=user, reason="password changed", keep_id=keep_session_id)


# --- device sessions ----------------------------------------------------------------------------


def _active_key(session_id) -> str:
    return f"device-session:{session_id}:active"


def is_session_active(session_id) -> bool:
    """Cached: once warm, an authenticated request costs no query for this."""
    key = _active_key(session_id)
    cached = cache.get(key)
    if cached is not None:
        return cached == 1
    now = timezone.now()
    active = DeviceSession.objects.filter(pk=session_id, revoked_at__isnull=True, expires_at__gt=now).exists()
    # add, not set: a revocation that lands meanwhile has written 0 and must win
    cache.add(key, 1 if active else 0, timeout=_ACTIVE_CACHE_S)
    return active


def _user_key(user_id) -> str:
    return f"user:{user_id}"


def forget_user(user_id) -> None:
    """Drop the cached user row: called whenever a user changes (User.save, and every queryset update)."""
    cache.delete(_user_key(user_id))


def session_user(*, session_id, user_id) -> User | None:
    """The live user behind an access token, in one cache round trip once warm (no query)."""
    active_key, user_key = _active_key(session_id), _user_key(user_id)
    found = cache.get_many([active_key, user_key])
    active = found.get(active_key)
    if active is None:
        active = 1 if is_session_active(session_id) else 0
    if active != 1:
        return None
    user = found.get(user_key)
    if user is None:
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            return None
        cache.add(user_key, user, timeout=_ACTIVE_CACHE_S)
    return user if user.is_active else None


def _forget_sessions(sessions: list[DeviceSession]) -> None:
    cache.set_many({_active_key(session.pk): 0 for session in sessions}, timeout=_ACTIVE_CACHE_S)
    browser_keys = [session.browser_session_key for session in sessions if session.browser_session_key]
    if browser_keys:
        store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore
        for key in browser_keys:
            store(session_key=key).delete()


def revoke_sessions(*, user: User, reason: str, keep_id=None, only_id=None) -> int:
    """Revoke the user's live sessions (one, all, or all but one); returns how many died."""
    now = timezone.now()
    qs = DeviceSession.objects.filter(user=user, revoked_at__isnull=True)
    if only_id is not None:
        qs = qs.filter(pk=only_id)
    if keep_id is not None:
        qs = qs.exclude(pk=keep_id)
    sessions = list(qs.only("pk", "browser_session_key"))
    if not sessions:
        return 0
    DeviceSession.objects.filter(pk__in=[session.pk for session in sessions], revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason, refresh_jti=""
    )
    # Now, not on commit: failing closed (a cached 'revoked' that rolls back) is the safe side.
    _forget_sessions(sessions)
    return len(sessions)


def _new_refresh(user: User, session: DeviceSession) -> RefreshToken:
    refresh = RefreshToken.for_user(user)
    refresh[SESSION_CLAIM] = str(session.pk)
    return refresh


@transaction.atomic
def start_api_session(*, user: User, client: Client) -> TokenPair:
    now = timezone.now()
    session = DeviceSession(
        user=user,
        kind=DeviceSession.Kind.API,
        user_agent=client.user_agent[:512],
        device=client.device,
        ip=client.ip,
        created_at=now,
        last_used_at=now,
        expires_at=now + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"],
    )
    refresh = _new_refresh(user, session)
    session.refresh_jti = refresh["jti"]
    session.save()
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh), session=session)


def _read_refresh(raw: str) -> RefreshToken:
    try:
        token = RefreshToken(raw)
    except TokenError:
        raise InvalidRefreshToken("The refresh token is invalid or has expired.") from None
    if SESSION_CLAIM not in token:
        raise InvalidRefreshToken("The refresh token is invalid or has expired.")
    return token


def rotate_refresh_token(*, raw_refresh: str, client: Client) -> TokenPair:
    """Exactly one caller wins a refresh token; presenting it again afterwards is theft: the session dies."""
    token = _read_refresh(raw_refresh)
    now = timezone.now()
    session = (
        DeviceSession.objects.select_related("user")
        .filter(pk=token[SESSION_CLAIM], revoked_at__isnull=True, expires_at__gt=now)
        .first()
    )
    if session is None or not session.user.is_active:
        raise InvalidRefreshToken("This session has ended. Log in again.")
    refresh = _new_refresh(session.user, session)
    claimed = DeviceSession.objects.filter(
        pk=session.pk, refresh_jti=token["jti"], revoked_at__isnull=True, expires_at__gt=now
    ).update(
        refresh_jti=refresh["jti"],
        last_used_at=now,
        ip=client.ip or session.ip,
        expires_at=now + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"],
    )
    if not claimed:
        with transaction.atomic():
            revoke_sessions(user=session.user, reason="refresh token reuse", only_id=session.pk)
        raise InvalidRefreshToken("This refresh token was already used; the session has been ended for safety.")
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh), session=session)


def end_api_session(*, raw_refresh: str) -> None:
    token = _read_refresh(raw_refresh)
    session = DeviceSession.objects.filter(pk=token[SESSION_CLAIM]).select_related("user").first()
    if session is not None:
        with transaction.atomic():
            revoke_sessions(user=session.user, reason="logout", only_id=session.pk)


@transaction.atomic
def start_browser_session(*, user: User, session_key: str, client: Client, expires_at) -> DeviceSession:
    now = timezone.now()
    return DeviceSession.objects.create(
        user=user,
        kind=DeviceSession.Kind.BROWSER,
        browser_session_key=session_key,
        user_agent=client.user_agent[:512],
        device=client.device,
        ip=client.ip,
        created_at=now,
        last_used_at=now,
        expires_at=expires_at,
    )


def touch_session(*, session_id, ip: str | None) -> None:
    """Record activity at most every five minutes: a write per request would cost more than it tells."""
    if cache.add(f"device-session:{session_id}:touched", 1, timeout=300):
        DeviceSession.objects.filter(pk=session_id).update(last_used_at=timezone.now(), ip=ip)


def purge_expired_sessions() -> int:
    """Delete sessions that expired, or were revoked, more than a day ago."""
    cutoff = timezone.now() - settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] - timedelta(days=1)
    deleted, _ = DeviceSession.objects.filter(Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff)).delete()
    return deleted


# --- demo -----------------------------------------------------------------------------------------

DEMO_EMAIL = "demo@cryptodesk.local"
DEMO_PASSWORD = "cryptodesk-demo"  # noqa: S105 - a published demo login, not a secret


@transaction.atomic
def ensure_demo_user() -> User:
    """The demo account exists, is active and has the published password; nothing else is touched."""
    user, created = User.objects.get_or_create(
        email=DEMO_EMAIL, defaults={"display_name": "Demo Trader", "email_verified": True}
    )
    if created or not user.is_active or not user.check_password(DEMO_PASSWORD):
        user.set_password(DEMO_PASSWORD)
        user.is_active = True
        user.save()
    return user
