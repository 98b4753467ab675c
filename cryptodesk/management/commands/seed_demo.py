"""Idempotent demo data: each app that has some seeds its own (AppConfig.seed_demo), left to right."""

from django.apps import apps
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or refresh the demo account and load the demo data. Safe to run any number of times."

    def handle(self, *args, **options) -> None:
        for config in apps.get_app_configs():
            seed = getattr(config, "seed_demo", None)
            if callable(seed):
                for line in seed():
                    self.stdout.write(line)
