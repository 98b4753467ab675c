"""Paper portfolios: cash, holdings, orders, trades, transfers, snapshots; watchlists, alerts, notifications."""

import uuid
from decimal import Decimal, localcontext

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from cryptodesk.money import AMOUNT, CONTEXT
from market.models import Coin


class Portfolio(models.Model):
    class Currency(models.TextChoices):
        USD = "usd", "US dollar"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portfolios")
    name = models.CharField(max_length=80)
    base_currency = models.CharField(max_length=8, choices=Currency.choices, default=Currency.USD)
    starting_cash = models.DecimalField(**AMOUNT)
    cash = models.DecimalField(**AMOUNT, help_text="All cash, including what open buy orders reserve.")
    reserved_cash = models.DecimalField(**AMOUNT, default=0, help_text="Held for open limit buys (with their fee).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="portfolio_owner_name_unique"),
            models.CheckConstraint(condition=Q(cash__gte=0), name="portfolio_cash_gte_0"),
            models.CheckConstraint(condition=Q(reserved_cash__gte=0), name="portfolio_reserved_cash_gte_0"),
            models.CheckConstraint(condition=Q(reserved_cash__lte=F("cash")), name="portfolio_reserved_lte_cash"),
            models.CheckConstraint(condition=Q(starting_cash__gte=0), name="portfolio_starting_cash_gte_0"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def available_cash(self) -> Decimal:
        with localcontext(CONTEXT):
            return self.cash - self.reserved_cash


class Holding(models.Model):
    """A position: average-cost basis (buy fees included), realized P&L accumulated on sells."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="holdings")
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(**AMOUNT, default=0)
    reserved_quantity = models.DecimalField(**AMOUNT, default=0, help_text="Held for open limit sells.")
    average_cost = models.DecimalField(**AMOUNT, default=0)
    realized_pnl = models.DecimalField(**AMOUNT, default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["coin_id"]
        constraints = [
            models.UniqueConstraint(fields=["portfolio", "coin"], name="holding_portfolio_coin_unique"),
            models.CheckConstraint(condition=Q(quantity__gte=0), name="holding_quantity_gte_0"),
            models.CheckConstraint(condition=Q(reserved_quantity__gte=0), name="holding_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved_quantity__lte=F("quantity")), name="holding_reserved_lte_quantity"
            ),
            models.CheckConstraint(condition=Q(average_cost__gte=0), name="holding_average_cost_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.coin_id}"

    @property
    def available_quantity(self) -> Decimal:
        """What open sell orders do not hold."""
        with localcontext(CONTEXT):
            return self.quantity - self.reserved_quantity


class Order(models.Model):
    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    class Type(models.TextChoices):
        MARKET = "market", "Market"
        LIMIT = "limit", "Limit"
        STOP = "stop", "Stop"
        STOP_LIMIT = "stop_limit", "Stop limit"
        TAKE_PROFIT = "take_profit", "Take profit"
        TRAILING_STOP = "trailing_stop", "Trailing stop"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="orders")
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=13, choices=Type.choices)
    quantity = models.DecimalField(**AMOUNT)
    limit_price = models.DecimalField(**AMOUNT, null=True, blank=True)
    # protective orders: the trigger (a trailing stop's moves with the best price seen since placement)
    stop_price = models.DecimalField(**AMOUNT, null=True, blank=True)
    trail_percent = models.DecimalField(max_digits=10, decimal_places=8, null=True, blank=True)
    trail_amount = models.DecimalField(**AMOUNT, null=True, blank=True)
    trail_peak = models.DecimalField(
        **AMOUNT,
        null=True,
        blank=True,
        help_text="Best price seen since placement: highest for a sell, lowest for a buy.",
    )
    triggered_at = models.DateTimeField(null=True, blank=True)
    # a buy's bracket, placed as one-cancels-the-other sells when it fills
    stop_loss_price = models.DecimalField(**AMOUNT, null=True, blank=True)
    take_profit_price = models.DecimalField(**AMOUNT, null=True, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    oco_group = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    reserved = models.DecimalField(**AMOUNT, default=0, help_text="Cash (buys) or quantity (sells) held while open.")
    filled_price = models.DecimalField(**AMOUNT, null=True, blank=True)
    fee = models.DecimalField(**AMOUNT, null=True, blank=True)
    reject_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    filled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["portfolio", "-created_at"], name="order_portfolio_created_idx"),
            models.Index(fields=["coin", "status"], name="order_coin_status_idx", condition=Q(status="open")),
            models.Index(fields=["oco_group"], name="order_oco_group_idx", condition=Q(oco_group__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_gt_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="order_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(type__in=["market", "stop", "take_profit", "trailing_stop"], limit_price__isnull=True)
                | Q(type__in=["limit", "stop_limit"], limit_price__gt=0),
                name="order_limit_price_matches_type",
            ),
            models.CheckConstraint(
                condition=Q(type__in=["market", "limit"], stop_price__isnull=True)
                | Q(type__in=["stop", "stop_limit", "take_profit", "trailing_stop"], stop_price__gt=0),
                name="order_stop_price_matches_type",
            ),
            models.CheckConstraint(
                condition=Q(trail_percent__isnull=True, trail_amount__isnull=True, trail_peak__isnull=True)
                | Q(type="trailing_stop", trail_peak__gt=0)
                & (
                    Q(trail_percent__gt=0, trail_percent__lt=100, trail_amount__isnull=True)
                    | Q(trail_percent__isnull=True, trail_amount__gt=0)
                ),
                name="order_trail_matches_type",
            ),
            models.CheckConstraint(
                condition=Q(type="take_profit", side="buy", _negated=True), name="order_take_profit_sells"
            ),
            models.CheckConstraint(
                condition=Q(stop_loss_price__isnull=True, take_profit_price__isnull=True)
                | Q(side="buy", stop_loss_price__gt=0, take_profit_price__isnull=True)
                | Q(side="buy", stop_loss_price__isnull=True, take_profit_price__gt=0)
                | Q(side="buy", stop_loss_price__gt=0, take_profit_price__gt=F("stop_loss_price")),
                name="order_bracket_on_buys",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.coin_id} ({self.status})"


class IdempotencyKey(models.Model):
    """One key per user: the same key and body return the same order or transfer, never a second one."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64)
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="idempotency_key", null=True)
    transfer = models.OneToOneField(
        "CashTransfer", on_delete=models.CASCADE, related_name="idempotency_key", null=True, blank=True
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")]

    def __str__(self) -> str:
        return self.key


class Trade(models.Model):
    """A fill. Buys: cost = notional + fee. Sells: proceeds = notional - fee, realized P&L against average cost."""

    order = models.OneToOneField(Order, on_delete=models.RESTRICT, related_name="trade")
    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="trades")
    coin = models.ForeignKey(Coin, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=Order.Side.choices)
    quantity = models.DecimalField(**AMOUNT)
    price = models.DecimalField(**AMOUNT)
    notional = models.DecimalField(**AMOUNT)
    fee = models.DecimalField(**AMOUNT)
    realized_pnl = models.DecimalField(**AMOUNT, null=True, blank=True)
    executed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-executed_at", "-id"]
        indexes = [models.Index(fields=["portfolio", "-executed_at"], name="trade_portfolio_time_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="trade_quantity_gt_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="trade_price_gte_0"),
            models.CheckConstraint(condition=Q(fee__gte=0), name="trade_fee_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.coin_id} @ {self.price}"


class CashTransfer(models.Model):
    """Money in or out: returns exclude these (time-weighted)."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "Deposit"
        WITHDRAWAL = "withdrawal", "Withdrawal"

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="transfers")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**AMOUNT)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_gt_0")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class PortfolioSnapshot(models.Model):
    """End-of-day value (refreshed after each trade that day): the series performance and risk read."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="snapshots")
    date = models.DateField()
    cash = models.DecimalField(**AMOUNT)
    market_value = models.DecimalField(**AMOUNT)
    total_value = models.DecimalField(**AMOUNT)
    net_flow = models.DecimalField(**AMOUNT, default=0, help_text="Deposits minus withdrawals that day.")
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["portfolio", "date"], name="snapshot_portfolio_date_unique")]

    def __str__(self) -> str:
        return f"{self.portfolio_id} {self.date} {self.total_value}"


class Watchlist(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watchlists")
    name = models.CharField(max_length=80)
    coins = models.ManyToManyField(Coin, related_name="+", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="watchlist_owner_name_unique")]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    class Condition(models.TextChoices):
        PRICE_ABOVE = "price_above", "Price above"
        PRICE_BELOW = "price_below", "Price below"
        CHANGE_24H_ABOVE = "change_24h_above", "24h change above (%)"
        CHANGE_24H_BELOW = "change_24h_below", "24h change below (%)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    coin = models.ForeignKey(Coin, on_delete=models.CASCADE, related_name="+")
    condition = models.CharField(max_length=20, choices=Condition.choices)
    threshold = models.DecimalField(**AMOUNT)
    is_active = models.BooleanField(default=True)
    is_met = models.BooleanField(
        default=False, help_text="The condition held at the last check: fire on crossing only."
    )
    notify_email = models.BooleanField(default=False)
    last_triggered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["coin", "is_active"], name="alert_coin_active_idx")]

    def __str__(self) -> str:
        return f"{self.coin_id} {self.condition} {self.threshold}"


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, default="alert")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="notification_user_unread_idx")]

    def __str__(self) -> str:
        return self.title
