"""One CoinGecko market sync now, with a summary."""

from django.core.management.base import BaseCommand, CommandError

from market import services
from market.coingecko import CallBudgetExhausted, CoinGeckoError


class Command(BaseCommand):
    help = "Fetch the top coins from CoinGecko now and print what changed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--history", action="store_true", help="Also backfill missing history for the top coins.")
        parser.add_argument("--trending", action="store_true", help="Also refresh trending coins and global stats.")

    def handle(self, *args, history: bool, trending: bool, **options) -> None:
        jobs = [("markets", services.sync_markets)]
        if trending:
            jobs.append(("trending and global", services.sync_trending_and_global))
        if history:
            jobs.append(("history", services.backfill_history))
        for label, job in jobs:
            try:
                run = job()
            except (CoinGeckoError, CallBudgetExhausted, services.SyncFailed) as exc:
                raise CommandError(f"{label} sync failed: {exc}") from None
            self.stdout.write(
                f"{label}: {run.status} in {run.duration_s}s: {run.coins_upserted} coins, {run.points_written} points "
                f"written, {run.coins_skipped} skipped, {run.api_calls} API calls (sync run #{run.pk})"
            )
            for coin, reason in list(run.skipped.items())[:10]:
                self.stdout.write(f"  skipped {coin}: {reason}")
