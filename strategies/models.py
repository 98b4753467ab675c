"""Strategies (a kind, its parameters, a coin and a timeframe) and their backtests."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from cryptodesk.money import AMOUNT
from market.models import Coin

from .engine.kinds import KINDS, TIMEFRAMES


def archive_if_shared(collector, field, sub_objs, using) -> None:
    """`on_delete` of a strategy's owner: a strategy other users have backtested, optimised, traded on paper or
    cloned is kept, archived with no owner (their runs stay); the others are deleted with the account."""
    model = field.model
    shared_q = Q()
    uses = ((Backtest, "strategy"), (Optimization, "strategy"), (PaperRun, "strategy"), (model, "cloned_from"))
    for related, key in uses:
        others = related.objects.filter(**{key: OuterRef("pk")}).exclude(owner=OuterRef("owner"))
        shared_q |= Exists(others)
    if not isinstance(sub_objs, models.QuerySet):
        sub_objs = model._base_manager.filter(pk__in=[strategy.pk for strategy in sub_objs])
    shared = list(sub_objs.filter(shared_q))
    kept = {strategy.pk for strategy in shared}
    if shared:
        collector.add_field_update(field, None, shared)
        collector.add_field_update(model._meta.get_field("archived_at"), timezone.now(), shared)
        collector.add_field_update(model._meta.get_field("visibility"), model.Visibility.PRIVATE, shared)
    doomed = [strategy for strategy in sub_objs if strategy.pk not in kept]
    if doomed:
        models.CASCADE(collector, field, doomed, using)


class Strategy(models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        PUBLISHED = "published", "Published"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=archive_if_shared,
        null=True,
        blank=True,
        related_name="strategies",
        help_text="Empty once the owner's account is deleted while others still had runs of it (then archived).",
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, max_length=4000)
    kind = models.CharField(max_length=32, choices=[(name, kind.label) for name, kind in KINDS.items()])
    params = models.JSONField(default=dict)
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    timeframe = models.CharField(max_length=4, choices=[(name, name) for name in TIMEFRAMES], default="1d")
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="clones")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Deleted by its owner (or with the owner's account) while others still had runs of it: hidden, "
        "not runnable.",
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["visibility", "-updated_at"], name="strategy_visibility_idx")]

    def __str__(self) -> str:
        return self.name


class Backtest(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="backtests")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtests")
    # the inputs, frozen: re-running them gives the same result whatever happens to the strategy later
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    timeframe = models.CharField(max_length=4)
    start = models.DateTimeField()
    end = models.DateTimeField()
    initial_capital = models.DecimalField(**AMOUNT)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=4)
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=4)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # the outputs
    data_start = models.DateTimeField(null=True, blank=True, help_text="The first bar actually used.")
    data_end = models.DateTimeField(null=True, blank=True, help_text="The last bar actually used.")
    bars = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    equity_curve = models.JSONField(default=list, blank=True, help_text="[[epoch ms, equity, buy-and-hold], …]")
    trades = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker's last sign of life.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker has claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["strategy", "-created_at"], name="backtest_strategy_idx"),
            models.Index(fields=["owner", "status"], name="backtest_owner_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="backtest_end_after_start"),
            models.CheckConstraint(condition=Q(initial_capital__gt=0), name="backtest_capital_gt_0"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="backtest_progress_lte_100"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.start:%Y-%m-%d}–{self.end:%Y-%m-%d} ({self.status})"


class PaperRun(models.Model):
    """A strategy trading one of its owner's paper portfolios, bar by bar, after each market sync."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        STOPPED = "stopped", "Stopped"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="paper_runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="paper_runs")
    portfolio = models.ForeignKey("portfolios.Portfolio", on_delete=models.CASCADE, related_name="paper_runs")
    # frozen at start, like a backtest's inputs
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    timeframe = models.CharField(max_length=4)
    capital = models.DecimalField(**AMOUNT, help_text="Cash available to the run when it started.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    last_bar_ms = models.BigIntegerField(null=True, blank=True, help_text="The newest bar already acted on.")
    last_error = models.TextField(blank=True, help_text="Why the newest evaluation failed; empty once one succeeds.")
    last_error_at = models.DateTimeField(null=True, blank=True)
    # the drift report's backtest, kept until a newer price point arrives: a page view never re-simulates
    drift_backtest = models.JSONField(null=True, blank=True)
    drift_point_ms = models.BigIntegerField(null=True, blank=True, help_text="The newest point drift_backtest read.")
    started_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["coin", "status"], name="paperrun_coin_status_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["portfolio", "coin"], condition=Q(status="active"), name="paperrun_one_active_per_coin"
            )
        ]

    def __str__(self) -> str:
        return f"{self.strategy} on {self.portfolio} ({self.status})"


class PaperFill(models.Model):
    """An order a paper run placed, with the bar whose signal caused it."""

    run = models.ForeignKey(PaperRun, on_delete=models.CASCADE, related_name="fills")
    order = models.OneToOneField("portfolios.Order", on_delete=models.CASCADE, related_name="+")
    bar_ms = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.run_id} @ {self.bar_ms}"


class Optimization(models.Model):
    """A grid of a strategy's parameters, each combination backtested over one range; optionally walk-forward."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="optimizations")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="optimizations")
    # the inputs, frozen as a backtest's are
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict, help_text="The strategy's parameters: those the grid does not vary.")
    grid = models.JSONField(default=dict, help_text="{param: [values]}, cleaned, in the kind's declared order.")
    objective = models.CharField(max_length=16)
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    timeframe = models.CharField(max_length=4)
    start = models.DateTimeField()
    end = models.DateTimeField()
    initial_capital = models.DecimalField(**AMOUNT)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=4)
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=4)
    train_bars = models.PositiveIntegerField(null=True, blank=True, help_text="Walk-forward: bars to optimise on.")
    test_bars = models.PositiveIntegerField(null=True, blank=True, help_text="Walk-forward: bars to test on.")
    combinations = models.PositiveIntegerField(default=0, help_text="The grid's size, refused ones included.")
    skipped = models.PositiveIntegerField(default=0, help_text="Combinations the kind refuses (fast ≥ slow).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # the outputs
    data_start = models.DateTimeField(null=True, blank=True)
    data_end = models.DateTimeField(null=True, blank=True)
    bars = models.PositiveIntegerField(default=0)
    results = models.JSONField(
        default=dict, blank=True, help_text='{"params": [names], "metrics": [names], "rows": [[values], [metrics]]}'
    )
    best = models.JSONField(null=True, blank=True, help_text="{index, params, metrics} of the best combination.")
    windows = models.JSONField(default=list, blank=True, help_text="Walk-forward windows, in time order.")
    oos_metrics = models.JSONField(null=True, blank=True, help_text="Metrics of the stitched test windows.")
    oos_equity = models.JSONField(default=list, blank=True, help_text="[[epoch ms, equity], …] of those windows.")
    deflated_sharpe = models.JSONField(null=True, blank=True, help_text="The best's deflated Sharpe ratio, inputs.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="The worker's last sign of life.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker has claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["strategy", "-created_at"], name="optimization_strategy_idx"),
            models.Index(fields=["owner", "status"], name="optimization_owner_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="optimization_end_after_start"),
            models.CheckConstraint(condition=Q(initial_capital__gt=0), name="optimization_capital_gt_0"),
            models.CheckConstraint(condition=Q(progress__lte=100), name="optimization_progress_lte_100"),
            models.CheckConstraint(
                condition=Q(train_bars__isnull=True, test_bars__isnull=True) | Q(train_bars__gte=2, test_bars__gte=2),
                name="optimization_walk_forward_both",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} grid of {self.combinations} ({self.status})"

    @property
    def is_walk_forward(self) -> bool:
        return self.train_bars is not None
