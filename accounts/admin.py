"""Operators manage users here: search, filter by role and verification, deactivate (sessions die)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from . import services, views
from .models import DeviceSession, User


def admin_login(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The site's login (throttle, device session) behind /admin/login/."""
    return views.admin_login_view(request)


def admin_logout(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """The site's logout: the device session ends with the browser session."""
    return views.logout_view(request)


def admin_password_change(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """Operators change their own password in settings, where the other sessions are ended."""
    return redirect("accounts:settings")


admin.site.login = admin_login
admin.site.logout = admin_logout
admin.site.password_change = admin_password_change


class DeviceSessionInline(admin.TabularInline):
    model = DeviceSession
    extra = 0
    can_delete = False
    fields = ["kind", "device", "ip", "created_at", "last_used_at", "expires_at", "revoked_at", "revoked_reason"]
    readonly_fields = fields
    ordering = ["-last_used_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ["email"]


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class OperatorPasswordChangeForm(AdminPasswordChangeForm):
    """An operator's new password (or none) ends every session and token of the user at once."""

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=commit)
        if commit:
            services.revoke_sessions(user=user, reason="password changed by an operator")
        return user


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    change_password_form = OperatorPasswordChangeForm
    ordering = ["email"]
    list_display = ["email", "display_name", "role", "email_verified", "is_active", "date_joined", "last_login"]
    list_filter = ["role", "email_verified", "is_active"]
    search_fields = ["email", "display_name"]
    readonly_fields = ["date_joined", "last_login", "is_staff"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["display_name", "base_currency", "timezone", "email_verified"]}),
        ("Access", {"fields": ["role", "is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "role", "password1", "password2"]})]
    inlines = [DeviceSessionInline]
    actions = ["deactivate_users"]

    @admin.action(description="Deactivate selected users (revokes all their sessions)")
    def deactivate_users(self, request, queryset) -> None:
        count = 0
        for user in queryset.filter(is_active=True):
            services.deactivate_user(user=user)
            count += 1
        self.message_user(request, f"Deactivated {count} user(s); their sessions were revoked.", messages.SUCCESS)

    def delete_model(self, request, obj) -> None:
        services.delete_account(user=obj)

    def delete_queryset(self, request, queryset) -> None:
        services.delete_users(users=queryset)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            services.deactivate_user(user=obj)


@admin.register(DeviceSession)
class DeviceSessionAdmin(admin.ModelAdmin):
    list_display = ["user", "kind", "device", "ip", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email", "device", "ip"]
    list_select_related = ["user"]
    readonly_fields = [field.name for field in DeviceSession._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False
