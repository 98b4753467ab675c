"""Periodic account housekeeping."""

from celery import shared_task

from . import services


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def purge_expired_sessions_task() -> int:
    """Delete device sessions that ended more than a day ago; safe to repeat."""
    return services.purge_expired_sessions()
