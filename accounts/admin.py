"""Operators manage users here: search, filter by role and verification, deactivate (sessions die)."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from . import services
from .models import DeviceSession, User


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


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
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
