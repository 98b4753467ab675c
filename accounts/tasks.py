"""Account mail delivery and periodic housekeeping."""

import logging
import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from . import services

logger = logging.getLogger(__name__)

MAIL_ERRORS = (OSError, smtplib.SMTPException)  # the server is down, refuses or drops us: try again later


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=MAIL_ERRORS,
    max_retries=8,
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
)
def send_email_task(self, *, to: str, subject: str, body: str) -> None:
    """Send one plain-text email; a worker retries an SMTP outage with backoff for about a day."""
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    except MAIL_ERRORS as exc:
        if not self.request.is_eager:
            raise  # autoretry_for schedules the next attempt
        # In-process (no broker): the request that queued it must not fail for the mail server.
        logger.warning("email not sent (%s): %s: %s", subject, type(exc).__name__, exc)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def purge_expired_sessions_task() -> int:
    """Delete device sessions that ended more than a day ago; safe to repeat."""
    return services.purge_expired_sessions()
