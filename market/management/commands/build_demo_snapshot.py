"""Rebuild the shipped demo snapshot (deterministic: the same seed gives the same file)."""

from django.core.management.base import BaseCommand

from market.demo.snapshot import SEED, write_snapshot


class Command(BaseCommand):
    help = "Write market/demo/snapshot.json.gz from market/demo/coins.py with seeded random walks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=SEED)

    def handle(self, *args, seed: int, **options) -> None:
        path = write_snapshot(seed=seed)
        self.stdout.write(f"Wrote {path} ({path.stat().st_size} bytes).")
