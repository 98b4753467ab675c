"""Dispatch Celery tasks after commit; a message the broker refuses waits in the outbox, never a 500.

`enqueue_on_commit(task, *args, **kwargs)` publishes once the surrounding transaction commits
(`enqueue_now` for code that already runs after its commit). If the broker is unreachable the message
is stored in `OutboxMessage` (one warning per outage, no traceback) and `relay_outbox()` (beat, every
minute, and at once when a process that saw the outage publishes again) sends it later. A publish with no
outage behind it costs no query.

In eager mode (`CELERY_TASK_ALWAYS_EAGER`: no broker, and tests) the task runs in-process as before, and
with `CELERY_TASK_EAGER_PROPAGATES` its exceptions propagate: a failing task is a bug to see, not to hide.
Arguments must be JSON values (ids as int or str): they are stored as JSON and sent as JSON.
"""

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery import Task
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .models import OutboxMessage

logger = logging.getLogger(__name__)

RELAY_TASK = "cryptodesk.tasks.relay_outbox_task"
PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    OSError,  # amqp's and socket connection errors are OSErrors
    RedisConnectionError,
    RedisTimeoutError,
)
BATCH_SIZE = 100
MAX_BACKOFF = timedelta(hours=1)

_broker_down = False


def enqueue_on_commit(task: Task, *args: Any, **kwargs: Any) -> None:
    """Publish `task(*args, **kwargs)` after the current transaction commits; outbox it if the broker is down."""
    apply_async_on_commit(task, args=args, kwargs=kwargs)


def enqueue_now(task: Task, *args: Any, **kwargs: Any) -> None:
    """Publish now, for callers already past their commit (hook subscribers); outbox it if the broker is down."""
    args_, kwargs_ = _as_json(task.name, list(args), kwargs)
    _publish_or_store(task, args_, kwargs_, None)


def apply_async_on_commit(
    task: Task,
    *,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    task_id: str | None = None,
    robust: bool = False,
) -> None:
    """As `enqueue_on_commit`, with a fixed Celery `task_id` (for callers that hand the id out).

    `robust`: an eager task's error is logged instead of raised (Django's `on_commit(robust=True)`).
    """
    args, kwargs = _as_json(task.name, list(args), dict(kwargs or {}))

    def publish() -> None:
        _publish_or_store(task, args, kwargs, task_id)

    publish.__qualname__ = f"publish({task.name})"  # named in Django's log when a robust hook fails
    transaction.on_commit(publish, robust=robust)


def _as_json(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    try:
        json.dumps([args, kwargs])
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments of {name} must be JSON values (pass ids as int or str): {exc}") from exc
    return args, kwargs


def _publish_or_store(task: Task, args: list[Any], kwargs: dict[str, Any], task_id: str | None) -> None:
    if task.app.conf.task_always_eager:
        task.apply_async(args, kwargs, task_id=task_id)
        return
    try:
        task.apply_async(args, kwargs, task_id=task_id)
    except PUBLISH_ERRORS as exc:
        _note_broker_down(exc)
        OutboxMessage.objects.create(task_name=task.name, args=args, kwargs=kwargs, task_id=task_id or "")
        return
    recovered = _note_broker_up()
    if (
        recovered
        and task.name != RELAY_TASK
        and OutboxMessage.objects.filter(next_attempt_at__lte=timezone.now()).exists()
    ):
        _kick_relay(task)


def _kick_relay(task: Task) -> None:
    try:
        task.app.send_task(RELAY_TASK)
    except PUBLISH_ERRORS as exc:
        _note_broker_down(exc)


def _note_broker_down(exc: BaseException) -> None:
    global _broker_down
    if _broker_down:
        logger.debug("broker still unreachable, task message kept in the outbox: %s", exc)
        return
    _broker_down = True
    logger.warning("broker unreachable, task messages go to the outbox until it is back: %s", exc)


def _note_broker_up() -> bool:
    """True when this process had seen the broker down: the outage is over."""
    global _broker_down
    if not _broker_down:
        return False
    _broker_down = False
    logger.info("broker reachable again")
    return True


def backoff(attempts: int) -> timedelta:
    """Wait before the next relay attempt of a message that failed `attempts` times: 30 s doubling, 1 h at most."""
    return min(timedelta(seconds=15 * 2 ** min(attempts, 12)), MAX_BACKOFF)


def relay_outbox(*, now: datetime | None = None) -> int:
    """Republish due messages oldest first, deleting each once sent; stops at the first refusal. Returns sent."""
    from .celery import app

    now = now or timezone.now()
    sent = 0
    while True:
        with transaction.atomic():
            batch = list(
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(next_attempt_at__lte=now)
                .order_by("id")[:BATCH_SIZE]
            )
            for message in batch:
                try:
                    _republish(app, message)
                except PUBLISH_ERRORS as exc:
                    _note_broker_down(exc)
                    _defer(message, exc, now=now)
                    return sent  # the broker is down: the rest waits too, in order
                except Exception as exc:
                    logger.exception("outbox message %s could not be published", message.pk)
                    _defer(message, exc, now=now)  # this message is bad, not the broker: go on
                    continue
                message.delete()
                sent += 1
        if len(batch) < BATCH_SIZE:
            if sent:
                _note_broker_up()
            return sent


def _defer(message: OutboxMessage, exc: BaseException, *, now: datetime) -> None:
    message.attempts += 1
    message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    message.next_attempt_at = now + backoff(message.attempts)
    message.save(update_fields=["attempts", "last_error", "next_attempt_at"])


def _republish(app, message: OutboxMessage) -> None:
    task_id = message.task_id or None
    task = app.tasks.get(message.task_name)
    if task is None:
        app.send_task(message.task_name, args=message.args, kwargs=message.kwargs, task_id=task_id)
    else:
        task.apply_async(message.args, message.kwargs, task_id=task_id)
