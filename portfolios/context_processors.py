"""The notification bell: the unread count, read only if a template shows it (one COUNT, signed-in users only)."""

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from . import selectors


def notifications(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # A view that already knows the count (the dashboard) passes its own, and this one is never evaluated.
    return {"unread_notification_count": SimpleLazyObject(lambda: selectors.unread_notification_count(user))}
