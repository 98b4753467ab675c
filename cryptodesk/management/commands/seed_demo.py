"""Idempotent demo data: the demo account (and, as the apps grow, their demo data)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User

DEMO_EMAIL = "demo@cryptodesk.local"
DEMO_PASSWORD = "cryptodesk-demo"  # noqa: S105 - a published demo login, not a secret


class Command(BaseCommand):
    help = "Create or refresh the demo account and demo data. Safe to run any number of times."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        user, created = User.objects.get_or_create(
            email=DEMO_EMAIL, defaults={"display_name": "Demo Trader", "email_verified": True}
        )
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.is_active = True
            user.save()
        self.stdout.write(self.style.SUCCESS(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}"))
