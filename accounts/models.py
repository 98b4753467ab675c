"""Users (email login, roles) and their device sessions."""

import uuid
import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone as django_timezone


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone (use an IANA name like Europe/Paris).")


class UserManager(BaseUserManager):
    use_in_migrations = True

    @staticmethod
    def normalize_email_address(email: str) -> str:
        return (email or "").strip().lower()

    def get_by_natural_key(self, email: str):
        return self.get(email__iexact=self.normalize_email_address(email))

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email_address(email), **extra)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(role=User.Role.ADMIN, is_superuser=True, email_verified=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    class Role(models.TextChoices):
        TRADER = "trader", "Trader"
        ANALYST = "analyst", "Analyst"
        ADMIN = "admin", "Admin"

    class Currency(models.TextChoices):
        USD = "usd", "US dollar"
        EUR = "eur", "Euro"
        GBP = "gbp", "Pound sterling"
        JPY = "jpy", "Japanese yen"
        BTC = "btc", "Bitcoin"
        ETH = "eth", "Ether"

    email = models.EmailField(max_length=254, unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TRADER)
    base_currency = models.CharField(max_length=8, choices=Currency.choices, default=Currency.USD)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    email_verified = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, editable=False)
    date_joined = models.DateTimeField(default=django_timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(condition=models.Q(role__in=["trader", "analyst", "admin"]), name="user_role_valid"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        self.email = UserManager.normalize_email_address(self.email)
        # Operators are the admin role: the Django admin follows the role, never the other way round.
        self.is_staff = self.role == self.Role.ADMIN or self.is_superuser
        super().save(*args, **kwargs)
        cache.delete(f"user:{self.pk}")  # the API's cached copy (accounts.services.session_user)

    def delete(self, *args, **kwargs):
        pk = self.pk
        result = super().delete(*args, **kwargs)
        cache.delete(f"user:{pk}")
        return result

    def has_perm(self, perm, obj=None) -> bool:
        """Operators (the admin role) may do everything in the Django admin."""
        if self.is_active and self.role == self.Role.ADMIN:
            return True
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label) -> bool:
        if self.is_active and self.role == self.Role.ADMIN:
            return True
        return super().has_module_perms(app_label)

    @property
    def name(self) -> str:
        return self.display_name or self.email.split("@", 1)[0]

    @property
    def can_publish_strategies(self) -> bool:
        return self.role in {self.Role.ANALYST, self.Role.ADMIN}


class DeviceSession(models.Model):
    """One login on one device: an API refresh-token family or a browser session."""

    class Kind(models.TextChoices):
        API = "api", "API client"
        BROWSER = "browser", "Browser"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="device_sessions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    refresh_jti = models.CharField(max_length=64, blank=True, help_text="The one refresh token that may be used next.")
    previous_refresh_jti = models.CharField(
        max_length=64,
        blank=True,
        help_text="The refresh token rotated away last: a race loser, not a thief, for a moment.",
    )
    rotated_at = models.DateTimeField(null=True, blank=True)
    browser_session_key = models.CharField(max_length=40, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    device = models.CharField(max_length=120, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=django_timezone.now)
    last_used_at = models.DateTimeField(default=django_timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-last_used_at"]
        indexes = [
            models.Index(fields=["user", "revoked_at"], name="devsess_user_active_idx"),
            models.Index(fields=["expires_at"], name="devsess_expires_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.device or self.kind} ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > django_timezone.now()
