"""One CoinGecko market sync now, with a summary; on a fresh market also trending, global stats and history."""

from django.core.management.base import BaseCommand, CommandError

from market import selectors, services
from market.coingecko import CallBudgetExhausted, CoinGeckoError
from market.models import SyncRun

LABELS = {
    SyncRun.Kind.MARKETS: "markets",
    SyncRun.Kind.TRENDING_GLOBAL: "trending and global",
    SyncRun.Kind.HISTORY: "history",
}


class Command(BaseCommand):
    help = (
        "Fetch the top coins from CoinGecko now and print what changed. A market that has never had its "
        "trending, global stats or history gets them too."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--history", action="store_true", help="Also backfill missing history for the top coins.")
        parser.add_argument("--trending", action="store_true", help="Also refresh trending coins and global stats.")

    def handle(self, *args, history: bool, trending: bool, **options) -> None:
        try:
            markets = services.sync_markets(follow_up=False)
        except (CoinGeckoError, CallBudgetExhausted, services.SyncFailed) as exc:
            raise CommandError(f"markets sync failed: {exc}") from None
        self._report(markets)
        wanted = set(selectors.missing_initial_syncs())
        wanted |= {SyncRun.Kind.TRENDING_GLOBAL} if trending else set()
        wanted |= {SyncRun.Kind.HISTORY} if history else set()
        kinds = [kind for kind in selectors.FOLLOW_UP_KINDS if kind in wanted]
        failed = []
        for run in services.queue_follow_up_syncs(kinds=kinds):  # without a broker they run here, now
            run.refresh_from_db()
            self._report(run)
            if run.status == SyncRun.Status.FAILED:
                failed.append(f"{LABELS[run.kind]} sync failed: {run.error}")
        if failed:
            raise CommandError("; ".join(failed))

    def _report(self, run: SyncRun) -> None:
        label = LABELS[run.kind]
        if run.status in {SyncRun.Status.QUEUED, SyncRun.Status.RUNNING}:
            self.stdout.write(f"{label}: {run.status} for a worker (sync run #{run.pk})")
            return
        line = (
            f"{label}: {run.status} in {run.duration_s}s: {run.records_ok} coins, {run.points_written} points "
            f"written, {run.records_skipped} skipped, {run.api_calls} API calls (sync run #{run.pk})"
        )
        if run.status == SyncRun.Status.SKIPPED:
            line = f"{label}: skipped ({run.error}) (sync run #{run.pk})"
        self.stdout.write(line)
        for coin, reason in list(run.skipped.items())[:10]:
            self.stdout.write(f"  skipped {coin}: {reason}")
