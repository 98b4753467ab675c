"""Browser pages for accounts: login, registration, verification, password reset, settings."""

from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from cryptodesk.errors import DomainError
from cryptodesk.forms import add_service_errors

from . import selectors, services
from .forms import ChangePasswordForm, ForgotPasswordForm, LoginForm, ProfileForm, RegisterForm, SetPasswordForm
from .middleware import BROWSER_SESSION_KEY
from .models import User
from .tokens import user_for_password_reset
from .utils import client_of, site_url


def _log_in(request: HttpRequest, user) -> None:
    login(request, user, backend="accounts.backends.EmailBackend")
    session = services.start_browser_session(
        user=user,
        session_key=request.session.session_key or "",
        client=client_of(request),
        expires_at=request.session.get_expiry_date(),
    )
    request.session[BROWSER_SESSION_KEY] = str(session.pk)


def _redirect_next(request: HttpRequest, candidate: str | None, default: str) -> HttpResponse:
    """Follow `next` only to this site; anything else (another host, a scheme, `//`, `/\\`) goes to default."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(candidate)
    return redirect(default)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect("dashboard" if request.user.is_authenticated else "accounts:login")


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    return _login_page(request, default_next="dashboard")


@require_http_methods(["GET", "POST"])
def admin_login_view(request: HttpRequest) -> HttpResponse:
    """The admin signs in through the site's login: one throttle, one device session per login."""
    if request.user.is_authenticated and not request.user.is_staff:
        return redirect("dashboard")  # the admin would send a trader straight back here
    return _login_page(request, default_next=reverse("admin:index"))


def _login_page(request: HttpRequest, *, default_next: str) -> HttpResponse:
    if request.user.is_authenticated:
        return _redirect_next(request, request.GET.get("next"), default_next)
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = services.authenticate_login(**form.cleaned_data, client=client_of(request), request=request)
        except services.LoginThrottled as exc:
            form.add_error(None, exc.detail)
            status = 429
        except services.InvalidCredentials as exc:
            form.add_error(None, exc.detail)
        else:
            _log_in(request, user)
            return _redirect_next(request, request.GET.get("next"), default_next)
    context = {"form": form, "demo_login": selectors.demo_login()}
    return render(request, "accounts/login.html", context, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    session_id = request.session.get(BROWSER_SESSION_KEY)
    if request.user.is_authenticated and session_id:
        services.revoke_sessions(user=request.user, reason="logout", only_id=session_id)
    logout(request)
    messages.info(request, "You have been logged out.")
    return redirect("accounts:login")


@require_http_methods(["GET", "POST"])
def register_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.register_user(**form.cleaned_data, base_url=site_url(request))
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            _log_in(request, user)
            messages.success(request, f"Welcome to CryptoDesk! We sent a confirmation link to {user.email}.")
            return redirect("dashboard")
    return render(request, "accounts/register.html", {"form": form})


@require_http_methods(["GET", "POST"])
def verify_email_view(request: HttpRequest) -> HttpResponse:
    token = request.POST.get("token") or request.GET.get("token", "")
    if request.method == "POST":
        try:
            services.verify_email(token=token)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, "Your email address is confirmed.")
            return redirect("dashboard" if request.user.is_authenticated else "accounts:login")
    return render(request, "accounts/verify_email.html", {"token": token})


@login_required
@require_POST
def resend_verification_view(request: HttpRequest) -> HttpResponse:
    try:
        services.resend_verification_email(user=request.user, base_url=site_url(request))
    except services.ResendThrottled as exc:
        messages.error(request, exc.detail)
    except DomainError as exc:
        messages.info(request, exc.detail)
    else:
        messages.success(request, f"A new confirmation link is on its way to {request.user.email}.")
    return _redirect_next(request, request.POST.get("next"), "dashboard")


@require_http_methods(["GET", "POST"])
def password_forgot_view(request: HttpRequest) -> HttpResponse:
    form = ForgotPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.request_password_reset(email=form.cleaned_data["email"], base_url=site_url(request))
        messages.info(request, "If an account exists for that address, a reset link is on its way.")
        return redirect("accounts:login")
    return render(request, "accounts/password_forgot.html", {"form": form})


@require_http_methods(["GET", "POST"])
def password_reset_view(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    user = user_for_password_reset(uid, token)
    if user is None:
        return render(request, "accounts/password_reset.html", {"invalid": True}, status=400)
    form = SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.reset_password(user=user, new_password=form.cleaned_data["new_password"])
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Your password has been reset. Log in with the new one.")
            return redirect("accounts:login")
    return render(request, "accounts/password_reset.html", {"form": form})


def _settings_page(request: HttpRequest, *, profile_form=None, password_form=None, status: int = 200) -> HttpResponse:
    context = {
        "profile_form": profile_form or ProfileForm(instance=request.user),
        "password_form": password_form or ChangePasswordForm(),
        "sessions": selectors.active_sessions(user=request.user),
        "current_session_id": request.session.get(BROWSER_SESSION_KEY),
    }
    return render(request, "accounts/settings.html", context, status=status)


@login_required
@require_GET
def settings_view(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


@login_required
@require_POST
def settings_profile_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(
        request.POST, instance=User.objects.get(pk=user.pk)
    )  # a copy: a failed form must not touch request.user
    if form.is_valid():
        try:
            services.update_profile(user=user, base_url=site_url(request), **form.cleaned_data)
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, "Profile saved.")
            return redirect("accounts:settings")
    return _settings_page(request, profile_form=form, status=400)


@login_required
@require_POST
def settings_password_view(request: HttpRequest) -> HttpResponse:
    form = ChangePasswordForm(request.POST)
    if form.is_valid():
        try:
            services.change_password(
                user=request.user, **form.cleaned_data, keep_session_id=request.session.get(BROWSER_SESSION_KEY)
            )
        except DomainError as exc:
            add_service_errors(form, exc)
        else:
            update_session_auth_hash(request, request.user)
            messages.success(request, "Password changed. Your other sessions were logged out.")
            return redirect("accounts:settings")
    return _settings_page(request, password_form=form, status=400)


@login_required
@require_POST
def revoke_session_view(request: HttpRequest, session_id) -> HttpResponse:
    revoked = services.revoke_sessions(user=request.user, reason="revoked by user", only_id=session_id)
    if revoked:
        messages.success(request, "Session revoked: that device is logged out.")
    else:
        messages.error(request, "That session no longer exists.")
    return redirect("accounts:settings")


@login_required
@require_POST
def revoke_other_sessions_view(request: HttpRequest) -> HttpResponse:
    count = services.revoke_sessions(
        user=request.user, reason="revoked by user", keep_id=request.session.get(BROWSER_SESSION_KEY)
    )
    messages.success(request, f"Logged out {count} other session{'s' if count != 1 else ''}.")
    return redirect("accounts:settings")
