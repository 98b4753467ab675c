"""The one owner-scoping helper: what a user may not see does not exist for them (404)."""

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def owner_scoped(qs: QuerySet[M], user, *, field: str = "owner", write: bool = False) -> QuerySet[M]:
    if not getattr(user, "is_authenticated", False):
        return qs.none()
    if user.is_staff and not write:
        return qs  # operators read all (CONTRACT.md §3)
    return qs.filter(**{field: user})
