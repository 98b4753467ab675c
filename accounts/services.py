"""Account writes: registration, device sessions and their tokens, verification, passwords."""

import functools
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, router, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from ua_parser import parse as parse_user_agent

from cryptodesk.errors import Conflict, DomainError, FieldErrors
from cryptodesk.outbox import enqueue_on_commit

from .models import DeviceSession, User
from .tasks import send_email_task
from .throttling import hit, take_login_slot
from .tokens import make_email_verification_token, make_password_reset_token, read_email_verification_token

SESSION_CLAIM = "sid"
_ACTIVE_CACHE_S = 15 * 60  # as long as an access token lives
REFRESH_REUSE_GRACE = timedelta(seconds=10)  # concurrent refreshes of one token: the losers are not thieves


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


def _check_current_password(user: User, password: str, *, field: str) -> None:
    """Re-entering the password (e-mail or password change) counts against the account's login throttle: a
    stolen session cannot guess the password any faster than a login form could."""
    slot = take_login_slot(email=user.email, ip=None)
    if not slot.allowed:
        raise LoginThrottled(
            f"Too many wrong passwords. Try again in {slot.retry_after_s} seconds.",
            headers={"Retry-After": str(slot.retry_after_s)},
        )
    if not user.check_password(password):
        raise DomainError("Your current password is not correct.", field=field)
    slot.release()


# --- registration and profile -------------------------------------------------------------------


EMAIL_TAKEN = "An account with this email address already exists."


def _password_problems(password: str, *, user: User | None) -> list[str]:
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        return list(exc.messages)
    return []


def validate_new_password(password: str, *, user: User | None = None, field: str = "password") -> None:
    problems = _password_problems(password, user=user)
    if problems:
        raise FieldErrors({field: problems})


@transaction.atomic
def register_user(*, email: str, password: str, display_name: str = "", base_url: str) -> User:
    email = User.objects.normalize_email_address(email)
    candidate = User(email=email, display_name=display_name)
    errors: dict[str, list[str]] = {}
    if User.objects.filter(email__iexact=email).exists():
        errors["email"] = [EMAIL_TAKEN]
    if problems := _password_problems(password, user=candidate):
        errors["password"] = problems
    if errors:
        raise FieldErrors(errors)  # every problem at once, each beside its field
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:  # a concurrent registration won the race
        raise DomainError(EMAIL_TAKEN, field="email") from None
    _queue_verification_email(user=candidate, base_url=base_url)
    return candidate


@transaction.atomic
def update_profile(*, user: User, base_url: str, current_password: str | None = None, **changes) -> User:
    """Save profile fields. A new email needs the current password and starts unconfirmed; the old one is told."""
    email = changes.pop("email", None)
    old_email, old_email_verified = user.email, user.email_verified
    email_changed = email is not None and User.objects.normalize_email_address(email) != user.email
    if email_changed:
        if not current_password:
            raise DomainError("Enter your current password to change your email address.", field="current_password")
        _check_current_password(user, current_password, field="current_password")
        email = User.objects.normalize_email_address(email)
        if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
            raise DomainError(EMAIL_TAKEN, field="email")
        user.email, user.email_verified = email, False
    for field, value in changes.items():
        setattr(user, field, value)
    user.full_clean(exclude=["password"])
    user.save()
    if email_changed:
        _queue_verification_email(user=user, base_url=base_url)
        _queue_mail(
            to=old_email,
            confirmed=old_email_verified,
            subject="Your CryptoDesk email address was changed",
            template="accounts/email/email_changed.txt",
            context={"user": user, "old_email": old_email, "new_email": user.email},
        )
    return user


@transaction.atomic
def delete_account(*, user: User) -> None:
    revoke_sessions(user=user, reason="account deleted")
    user.delete()


@transaction.atomic
def delete_users(*, users: QuerySet[User]) -> int:
    """Operators' bulk delete: every session and cached row of those users dies with them."""
    doomed = list(users)
    for user in doomed:
        revoke_sessions(user=user, reason="account deleted")
    User.objects.filter(pk__in=[user.pk for user in doomed]).delete()
    for user in doomed:
        forget_user(user.pk)
    return len(doomed)


@transaction.atomic
def deactivate_user(*, user: User) -> None:
    """Operators' switch: the account can no longer log in and every session dies now."""
    User.objects.filter(pk=user.pk).update(is_active=False)
    forget_user(user.pk)
    user.is_active = False
    revoke_sessions(user=user, reason="account deactivated")


# --- email ------------------------------------------------------------------------------------


RESENDS_PER_HOUR = 3


class ResendThrottled(DomainError):
    status = 429
    slug = "throttled"
    title = "Too many confirmation emails"


def _queue_mail(*, to: str, confirmed: bool, subject: str, template: str, context: dict) -> None:
    """Queue one email for after commit (an SMTP outage is retried, never the request's problem).

    Nothing goes to an address that is not confirmed: only the confirmation link itself may.
    """
    if not confirmed:
        return
    body = render_to_string(template, context)
    enqueue_on_commit(send_email_task, to=to, subject=subject, body=body)


def _queue_verification_email(*, user: User, base_url: str) -> None:
    link = f"{base_url.rstrip('/')}/verify-email/?token={make_email_verification_token(user)}"
    _queue_mail(
        to=user.email,
        confirmed=True,  # the one mail that confirms it
        subject="Confirm your CryptoDesk email address",
        template="accounts/email/verify_email.txt",
        context={"user": user, "link": link, "hours": settings.EMAIL_VERIFICATION_TIMEOUT // 3600},
    )


def resend_verification_email(*, user: User, base_url: str) -> None:
    """Another confirmation link: at most RESENDS_PER_HOUR an hour per account, whatever the device."""
    if user.email_verified:
        raise Conflict("Your email address is already verified.")
    verdict = hit(f"verification-resend:{user.pk}", limit=RESENDS_PER_HOUR, window_s=3600)
    if not verdict.allowed:
        minutes = -(-verdict.retry_after_s // 60)
        raise ResendThrottled(
            f"Too many confirmation emails. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            headers={"Retry-After": str(verdict.retry_after_s)},
        )
    _queue_verification_email(user=user, base_url=base_url)


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
    _queue_mail(
        to=user.email,
        confirmed=user.email_verified,
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
    _check_current_password(user, old_password, field="old_password")
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


@functools.cache
def _user_columns() -> tuple[str, ...]:
    return tuple(field.attname for field in User._meta.concrete_fields)


def _cached_user_values(user: User) -> dict:
    """The user's row as plain values: cheaper to unpickle than a model, and it outlives no schema change."""
    return {name: getattr(user, name) for name in _user_columns()}


def _user_from_cached_values(values) -> User | None:
    """The user the cached row describes, built without a query; None if the row has another shape."""
    columns = _user_columns()
    if not isinstance(values, dict) or len(values) != len(columns):
        return None
    try:
        row = [values[name] for name in columns]
    except KeyError:
        return None
    return User.from_db(router.db_for_read(User), columns, row)


def session_cache_keys(*, session_id, user_id) -> list[str]:
    """The cache keys session_user reads: a caller may fetch them in a round trip it makes anyway."""
    return [_active_key(session_id), _user_key(user_id)]


def session_user(*, session_id, user_id, cached: dict | None = None) -> User | None:
    """The live user behind an access token, in one cache round trip once warm (no query); none at all when
    the caller passes what it fetched of session_cache_keys as `cached`.
    """
    active_key, user_key = session_cache_keys(session_id=session_id, user_id=user_id)
    found = cache.get_many([active_key, user_key]) if cached is None else cached
    active = found.get(active_key)
    if active is None:
        active = 1 if is_session_active(session_id) else 0
    if active != 1:
        return None
    row = found.get(user_key)
    user = _user_from_cached_values(row)
    if user is None:
        if row is not None:
            cache.delete(user_key)  # another shape (an older release's): replaced below
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            return None
        # add, not set: a copy a concurrent request cached after a change must not be overwritten by this one
        cache.add(user_key, _cached_user_values(user), timeout=_ACTIVE_CACHE_S)
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
        revoked_at=now, revoked_reason=reason, refresh_jti="", previous_refresh_jti=""
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
    """Exactly one caller wins a refresh token; presenting it again afterwards is theft: the session dies.

    Within REFRESH_REUSE_GRACE of its rotation, the token just rotated away is a lost race (a client
    refreshing from two tabs at once): refused, but the session and the winner's tokens live on.
    """
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
        previous_refresh_jti=token["jti"],
        rotated_at=now,
        last_used_at=now,
        ip=client.ip or session.ip,
        expires_at=now + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"],
    )
    if not claimed:
        lost_race = DeviceSession.objects.filter(
            pk=session.pk, previous_refresh_jti=token["jti"], rotated_at__gte=now - REFRESH_REUSE_GRACE
        ).exists()
        if lost_race:
            raise InvalidRefreshToken("This refresh token was just rotated by another request; use the new one.")
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
