"""Project-wide models: the task outbox."""

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A task message the broker refused after its write committed; the relay republishes it."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=255, blank=True, help_text="Celery task id to publish with, if fixed.")
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed relay attempts so far.")
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["next_attempt_at", "id"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"
