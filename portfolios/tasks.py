"""Portfolio jobs: limit fills and alerts after each price update, alert e-mail, daily snapshots."""

import logging
import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from cryptodesk.locks import single_flight

from . import services
from .models import Notification

logger = logging.getLogger(__name__)

# the server or the network, not the message: worth another try
TRANSIENT_SMTP_ERRORS = (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def fill_limit_orders_task(coin_ids: list[str] | None = None) -> int:
    """After a price write, the open orders it reached: protective orders triggered (a stop limit becomes a limit),
    then limit orders filled. Safe to repeat: each re-checks its order is still open under the portfolio lock."""
    triggered = services.trigger_orders(coin_ids=coin_ids)
    return triggered + services.fill_limit_orders(coin_ids=coin_ids)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def evaluate_alerts_task(coin_ids: list[str] | None = None) -> int:
    """Safe to repeat: an alert fires only on the transition its conditional update claims."""
    return services.evaluate_alerts(coin_ids=coin_ids)


@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def take_snapshot_task(portfolio_id: int) -> None:
    """After a trade or transfer commits: today's value, off the request path when a worker runs."""
    services.take_snapshot(portfolio_id=portfolio_id)


@shared_task(acks_late=True, soft_time_limit=30 * 60, time_limit=31 * 60)
def snapshot_portfolios_task() -> int:
    with single_flight("portfolios:snapshots", ttl_s=31 * 60) as acquired:
        return services.snapshot_all_portfolios() if acquired else 0


@shared_task(
    acks_late=True,
    soft_time_limit=30,
    time_limit=45,
    max_retries=5,
    autoretry_for=TRANSIENT_SMTP_ERRORS,
    retry_backoff=True,
    retry_jitter=True,
)
def send_alert_email_task(notification_id: int) -> bool:
    """E-mail one alert notification to its (verified) owner; a refused message is logged, not retried."""
    notification = Notification.objects.select_related("user").filter(pk=notification_id).first()
    if notification is None or not notification.user.email_verified:
        return False
    try:
        send_mail(
            f"CryptoDesk alert: {notification.title}",
            notification.body,
            settings.DEFAULT_FROM_EMAIL,
            [notification.user.email],
        )
    except TRANSIENT_SMTP_ERRORS:
        raise
    except smtplib.SMTPException as exc:
        logger.warning("alert e-mail for notification %s refused: %s", notification_id, exc)
        return False
    return True
