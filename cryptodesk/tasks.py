"""Project-wide background tasks."""

from celery import shared_task

from .outbox import relay_outbox


@shared_task(ignore_result=True)
def relay_outbox_task() -> int:
    """Republish task messages the broker refused earlier."""
    return relay_outbox()
