"""Coins, their latest quotes and price history, global stats, trending, and the record of every sync."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from cryptodesk.money import AMOUNT, PERCENT


class Source(models.TextChoices):
    COINGECKO = "coingecko", "CoinGecko"
    DEMO = "demo", "Demo data"


class Coin(models.Model):
    """A coin, keyed by its CoinGecko id (symbols are not unique)."""

    id = models.CharField(primary_key=True, max_length=100)
    symbol = models.CharField(max_length=32, db_index=True)
    name = models.CharField(max_length=200)
    image_url = models.URLField(max_length=500, blank=True, help_text="Where the logo came from; never linked.")
    logo = models.FileField(upload_to="logos/", blank=True)
    market_cap_rank = models.PositiveIntegerField(null=True, blank=True, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.COINGECKO)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = [models.F("market_cap_rank").asc(nulls_last=True), "id"]
        indexes = [models.Index(models.functions.Lower("symbol"), name="coin_symbol_lower_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.symbol.upper()})"


class Quote(models.Model):
    """The latest market snapshot of one coin, in USD."""

    coin = models.OneToOneField(Coin, on_delete=models.CASCADE, primary_key=True, related_name="quote")
    current_price = models.DecimalField(**AMOUNT)
    market_cap = models.DecimalField(**AMOUNT, null=True, blank=True)
    total_volume = models.DecimalField(**AMOUNT, null=True, blank=True)
    price_change_percentage_24h = models.DecimalField(**PERCENT, null=True, blank=True)
    high_24h = models.DecimalField(**AMOUNT, null=True, blank=True)
    low_24h = models.DecimalField(**AMOUNT, null=True, blank=True)
    market_cap_rank = models.PositiveIntegerField(null=True, blank=True)
    sparkline_7d = models.JSONField(
        default=list, blank=True, help_text="Recent prices as decimal strings, oldest first."
    )
    last_updated = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.COINGECKO)
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(current_price__gte=0), name="quote_price_gte_0")]

    def __str__(self) -> str:
        return f"{self.coin_id} @ {self.current_price}"


class PricePoint(models.Model):
    """One point of a coin's history: unique per coin and time.

    The unique (coin, ts) index also serves "newest first per coin" (a backward index scan), so no second
    index is kept: every sync inserts here, and each index costs every insert.
    """

    id = models.BigAutoField(primary_key=True)
    coin = models.ForeignKey(Coin, on_delete=models.CASCADE, related_name="price_points", db_index=False)
    ts = models.DateTimeField()
    price = models.DecimalField(**AMOUNT)
    market_cap = models.DecimalField(**AMOUNT, null=True, blank=True)
    total_volume = models.DecimalField(**AMOUNT, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["coin", "ts"], name="pricepoint_coin_ts_unique"),
            models.CheckConstraint(condition=Q(price__gte=0), name="pricepoint_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.coin_id} {self.ts:%Y-%m-%d %H:%M} {self.price}"


class GlobalStats(models.Model):
    """The whole market at one moment (the newest row is current)."""

    as_of = models.DateTimeField(unique=True)
    total_market_cap = models.DecimalField(**AMOUNT)
    total_volume = models.DecimalField(**AMOUNT)
    btc_dominance = models.DecimalField(**PERCENT)
    eth_dominance = models.DecimalField(**PERCENT, null=True, blank=True)
    market_cap_change_percentage_24h = models.DecimalField(**PERCENT, null=True, blank=True)
    active_cryptocurrencies = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.COINGECKO)

    class Meta:
        ordering = ["-as_of"]
        verbose_name_plural = "global stats"

    def __str__(self) -> str:
        return f"Global market {self.as_of:%Y-%m-%d %H:%M}"


class TrendingCoin(models.Model):
    """The coins people search for most, as last synced (rank 1 first)."""

    coin = models.ForeignKey(Coin, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField(unique=True)
    score = models.PositiveIntegerField(default=0)
    as_of = models.DateTimeField()

    class Meta:
        ordering = ["rank"]

    def __str__(self) -> str:
        return f"#{self.rank} {self.coin_id}"


class SyncRun(models.Model):
    """One sync job's record: what it did, what it cost, why it failed."""

    class Kind(models.TextChoices):
        MARKETS = "markets", "Markets (top coins and quotes)"
        HISTORY = "history", "History backfill"
        TRENDING_GLOBAL = "trending_global", "Trending and global"
        RETENTION = "retention", "History retention"
        DEMO_TICK = "demo_tick", "Demo ticker"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial (some records skipped)"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    FINISHED = (Status.SUCCEEDED, Status.PARTIAL)  # the job ran and wrote what it could

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    coins_upserted = models.PositiveIntegerField(default=0)
    points_written = models.PositiveIntegerField(default=0)
    points_deleted = models.PositiveIntegerField(default=0)
    records_ok = models.PositiveIntegerField(default=0, help_text="Records (coins, trending entries) written.")
    records_skipped = models.PositiveIntegerField(default=0, help_text="Records left out; why is in `skipped`.")
    api_calls = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    skipped = models.JSONField(default=dict, blank=True, help_text="Coin id → why it was left out.")
    requested_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["kind", "status", "-finished_at"], name="syncrun_kind_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 3)
        return None
