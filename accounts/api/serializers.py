"""Accounts API shapes: input serializers validate, output serializers describe."""

import functools

from rest_framework import serializers
from rest_framework.fields import Field

from accounts.models import DeviceSession, User


class UserSerializer(serializers.Serializer):
    """Declared field by field (not a ModelSerializer): it runs on every /me, and introspection costs."""

    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    display_name = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=User.Role.choices, read_only=True)
    base_currency = serializers.ChoiceField(choices=User.Currency.choices, read_only=True)
    timezone = serializers.CharField(read_only=True)
    email_verified = serializers.BooleanField(read_only=True)
    date_joined = serializers.DateTimeField(read_only=True)


@functools.cache
def _user_fields() -> tuple[tuple[str, Field], ...]:
    """UserSerializer's fields, bound once: they hold no per-call state when they only read."""
    return tuple((name, field) for name, field in UserSerializer().fields.items())


def user_data(user: User) -> dict:
    """What `UserSerializer(user).data` holds, without deep-copying its declared fields on every call."""
    data = {}
    for name, field in _user_fields():
        value = field.get_attribute(user)
        data[name] = None if value is None else field.to_representation(value)
    return data


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False)
    display_name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")


class ProfileUpdateSerializer(serializers.ModelSerializer):
    """What a user may change about themselves: never their role. A new email needs the current password."""

    current_password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=128, trim_whitespace=False
    )

    class Meta:
        model = User
        fields = ["email", "display_name", "base_currency", "timezone", "current_password"]
        extra_kwargs = {"email": {"validators": []}}  # uniqueness is the service's job (case-insensitive)


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField(read_only=True)
    refresh = serializers.CharField(read_only=True)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class VerifyEmailSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=512)


class ForgotPasswordSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class ResetPasswordSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class ChangePasswordSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128, trim_whitespace=False)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField(read_only=True)


class DeviceSessionSerializer(serializers.ModelSerializer):
    created = serializers.DateTimeField(source="created_at", read_only=True)
    last_used = serializers.DateTimeField(source="last_used_at", read_only=True)
    current = serializers.SerializerMethodField()

    class Meta:
        model = DeviceSession
        fields = ["id", "kind", "device", "user_agent", "ip", "created", "last_used", "expires_at", "current"]
        read_only_fields = fields

    def get_current(self, session: DeviceSession) -> bool:
        return str(session.pk) == str(self.context.get("current_session_id"))
