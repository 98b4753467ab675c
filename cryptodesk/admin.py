from django.contrib import admin
from django.utils import timezone

from .models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "created_at", "attempts", "next_attempt_at", "last_error")
    list_filter = ("task_name",)
    search_fields = ("task_name", "task_id")
    ordering = ("id",)
    readonly_fields = ("task_name", "args", "kwargs", "task_id", "created_at", "attempts", "last_error")
    actions = ("retry_now",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry selected messages at the next relay")
    def retry_now(self, request, queryset) -> None:
        count = queryset.update(next_attempt_at=timezone.now())
        self.message_user(request, f"{count} message(s) due now.")
