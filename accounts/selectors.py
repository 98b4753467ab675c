"""Account reads."""

from typing import NamedTuple

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from .models import DeviceSession, User


def active_sessions(*, user: User) -> QuerySet[DeviceSession]:
    return DeviceSession.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()).order_by(
        "-last_used_at", "-created_at"
    )


class DemoLogin(NamedTuple):
    email: str
    password: str


def demo_login() -> DemoLogin | None:
    """The published demo login, offered only by a development server (DEBUG) whose demo account exists."""
    from .services import DEMO_EMAIL, DEMO_PASSWORD

    if not settings.DEBUG or not User.objects.filter(email=DEMO_EMAIL, is_active=True).exists():
        return None
    return DemoLogin(DEMO_EMAIL, DEMO_PASSWORD)
