"""Portfolio API shapes: exact decimals as strings, input and output serializers apart."""

from decimal import Decimal

from rest_framework import serializers

from cryptodesk.api.fields import AmountField, PercentField
from market.models import Coin
from portfolios.models import Alert, CashTransfer, Notification, Order, Portfolio, Trade, Watchlist


class PortfolioSerializer(serializers.ModelSerializer):
    starting_cash = AmountField(read_only=True)
    cash = AmountField(read_only=True)
    reserved_cash = AmountField(read_only=True)
    available_cash = AmountField(read_only=True)

    class Meta:
        model = Portfolio
        fields = [
            "id",
            "name",
            "base_currency",
            "starting_cash",
            "cash",
            "reserved_cash",
            "available_cash",
            "created_at",
        ]
        read_only_fields = fields


class PortfolioCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    base_currency = serializers.ChoiceField(choices=Portfolio.Currency.choices, default=Portfolio.Currency.USD)
    starting_cash = AmountField(min_value=Decimal(0), max_value=Decimal(10) ** 15)


class PortfolioUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=80)


class TransferSerializer(serializers.ModelSerializer):
    amount = AmountField(min_value=Decimal("0.000000000000000001"), max_value=Decimal(10) ** 15)

    class Meta:
        model = CashTransfer
        fields = ["id", "kind", "amount", "created_at"]
        read_only_fields = ["id", "created_at"]


class HoldingSerializer(serializers.Serializer):
    coin = serializers.CharField(source="holding.coin_id")
    name = serializers.CharField(source="holding.coin.name")
    symbol = serializers.CharField(source="holding.coin.symbol")
    quantity = AmountField(source="holding.quantity")
    reserved_quantity = AmountField(source="holding.reserved_quantity")
    average_cost = AmountField(source="holding.average_cost")
    price = AmountField(allow_null=True)
    price_updated = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField(source="is_stale")
    market_value = AmountField()
    unrealized_pnl = AmountField()
    unrealized_pnl_pct = PercentField(allow_null=True)
    allocation_pct = PercentField()
    realized_pnl = AmountField(source="holding.realized_pnl")


class SummarySerializer(serializers.Serializer):
    cash = AmountField()
    reserved_cash = AmountField(source="portfolio.reserved_cash")
    available_cash = AmountField(source="portfolio.available_cash")
    starting_cash = AmountField(source="portfolio.starting_cash")
    market_value = AmountField()
    total_value = AmountField()
    realized_pnl = AmountField()
    unrealized_pnl = AmountField()
    day_change = AmountField(allow_null=True, help_text="Total value now minus yesterday's close, transfers excluded.")


class SeriesPointSerializer(serializers.Serializer):
    date = serializers.DateField()
    total_value = AmountField()


class PerformanceSerializer(serializers.Serializer):
    days = serializers.IntegerField(allow_null=True)
    time_weighted_return = AmountField(
        allow_null=True,
        help_text="Product of daily (1 + r) minus 1; deposits and withdrawals are not returns (0.12 = 12 %).",
    )
    simple_return = AmountField(
        allow_null=True, help_text="(end value - start value - net transfers) / (start value + deposits)."
    )
    net_flows = AmountField(help_text="Deposits minus withdrawals over the range.")
    series = SeriesPointSerializer(many=True)


class BenchmarkSerializer(serializers.Serializer):
    coin = serializers.CharField(help_text="The benchmark coin's id.")
    observations = serializers.IntegerField(
        help_text="The portfolio's daily returns, each beside the coin's on the same day (close to close)."
    )
    twr = AmountField(allow_null=True, help_text="The coin's time-weighted return over those days: Π (1 + b) - 1.")
    series = SeriesPointSerializer(
        many=True,
        help_text="The portfolio's money held in the coin instead (the same deposits and withdrawals on the same "
        "days), shaped as `series`; empty without the coin's history over the range.",
    )


class BenchmarkPerformanceSerializer(PerformanceSerializer):
    """Performance with `?benchmark=`: the same days against a coin."""

    benchmark = BenchmarkSerializer(required=False)
    alpha = AmountField(
        required=False,
        allow_null=True,
        help_text="Annualised: (1 + mean(r - beta × b))^365 - 1, r and b the daily returns of the portfolio and the "
        "coin, risk-free 0 (empyrical's alpha).",
    )
    beta = AmountField(
        required=False, allow_null=True, help_text="Regression slope of r on b: cov(r, b) / var(b) (1 = moves as it)."
    )
    tracking_error = AmountField(
        required=False,
        allow_null=True,
        help_text="Annualised: the sample stdev of the daily active returns (r - b) × √365.",
    )
    information_ratio = AmountField(
        required=False,
        allow_null=True,
        help_text="Mean daily active return / its stdev × √365: the annualised mean active over the tracking error.",
    )
    missing = serializers.DictField(
        required=False,
        child=serializers.CharField(),
        help_text="Each benchmark figure that is null (benchmark.twr, alpha, beta, tracking_error, "
        "information_ratio) → why.",
    )


class ValuePointSerializer(serializers.Serializer):
    time = serializers.DateTimeField(
        help_text="The bucket's start (UTC); the value is at its close, the last one live."
    )
    total_value = AmountField()


class ValueHistorySerializer(serializers.Serializer):
    days = serializers.IntegerField(allow_null=True)
    interval_s = serializers.IntegerField(help_text="Seconds between points: 3600 (7, 30 days) or 86400.")
    time_weighted_return = AmountField(allow_null=True, help_text="As in performance, over the same range.")
    points = ValuePointSerializer(
        many=True, help_text="Rebuilt from trades, transfers and stored prices: one per bucket, oldest first."
    )


class RiskSerializer(serializers.Serializer):
    observations = serializers.IntegerField(help_text="Daily returns the figures are computed from.")
    volatility = AmountField(allow_null=True, help_text="Annualised volatility: stdev of daily returns × √365.")
    max_drawdown = AmountField(allow_null=True, help_text="Largest fall from a peak, as a fraction (positive).")
    sharpe = AmountField(allow_null=True, help_text="Mean / stdev of daily returns × √365, risk-free rate 0.")
    value_at_risk_95 = AmountField(
        allow_null=True, help_text="One-day 95 % historical VaR in USD: the 5th-percentile daily loss × today's value."
    )
    largest_holding_pct = PercentField(allow_null=True, help_text="The biggest position's share of total value, %.")
    herfindahl_index = AmountField(
        allow_null=True, help_text="Concentration: sum of squared position weights (1 = one coin, 1/n = n equal coins)."
    )
    missing = serializers.DictField(
        child=serializers.CharField(), help_text="Each figure that is null → why, and when it will appear."
    )


class OrderSerializer(serializers.ModelSerializer):
    quantity = AmountField()
    limit_price = AmountField(allow_null=True)
    stop_price = AmountField(allow_null=True, help_text="The trigger; a trailing stop's, where it stands now.")
    trail_percent = PercentField(allow_null=True)
    trail_amount = AmountField(allow_null=True)
    stop_loss_price = AmountField(allow_null=True)
    take_profit_price = AmountField(allow_null=True)
    filled_price = AmountField(allow_null=True)
    fee = AmountField(allow_null=True)
    reserved = AmountField()

    class Meta:
        model = Order
        fields = [
            "id",
            "portfolio",
            "coin",
            "side",
            "type",
            "quantity",
            "limit_price",
            "stop_price",
            "trail_percent",
            "trail_amount",
            "triggered_at",
            "parent",
            "oco_group",
            "stop_loss_price",
            "take_profit_price",
            "status",
            "filled_price",
            "fee",
            "reserved",
            "reject_reason",
            "created_at",
            "filled_at",
            "cancelled_at",
        ]
        read_only_fields = fields


TINY = Decimal("0.000000000000000001")  # the smallest stored amount
TINY_PERCENT = Decimal("0.00000001")


class OrderCreateSerializer(serializers.Serializer):
    portfolio = serializers.PrimaryKeyRelatedField(queryset=Portfolio.objects.none())
    coin = serializers.SlugRelatedField(slug_field="id", queryset=Coin.objects.all())
    side = serializers.ChoiceField(choices=Order.Side.choices)
    type = serializers.ChoiceField(choices=Order.Type.choices)
    quantity = AmountField(min_value=TINY, max_value=Decimal(10) ** 18)
    limit_price = AmountField(min_value=TINY, required=False, allow_null=True)
    stop_price = AmountField(
        min_value=TINY, required=False, allow_null=True, help_text="stop, stop_limit, take_profit: the trigger."
    )
    trail_percent = PercentField(
        max_digits=10,
        decimal_places=8,
        min_value=TINY_PERCENT,
        max_value=Decimal("99.99999999"),
        required=False,
        allow_null=True,
        help_text="trailing_stop: the stop follows the best price seen, this many percent behind (or trail_amount).",
    )
    trail_amount = AmountField(min_value=TINY, required=False, allow_null=True, help_text="trailing_stop: in USD.")
    stop_loss_price = AmountField(
        min_value=TINY, required=False, allow_null=True, help_text="A buy's bracket: a stop sell placed when it fills."
    )
    take_profit_price = AmountField(
        min_value=TINY,
        required=False,
        allow_null=True,
        help_text="A buy's bracket: a take-profit sell placed when it fills, one-cancels-the-other with the stop loss.",
    )

    PRICE_TERMS = ("limit_price", "stop_price", "trail_percent", "trail_amount", "stop_loss_price", "take_profit_price")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:  # only your own portfolios exist for you
            self.fields["portfolio"].queryset = Portfolio.objects.filter(owner=request.user)

    def validate(self, data: dict) -> dict:
        if data["type"] == Order.Type.LIMIT and data.get("limit_price") is None:
            raise serializers.ValidationError({"limit_price": ["A limit order needs a limit price."]})
        if data["type"] == Order.Type.MARKET and data.get("limit_price") is not None:
            raise serializers.ValidationError({"limit_price": ["A market order takes no limit price."]})
        return data


class TradeSerializer(serializers.ModelSerializer):
    quantity = AmountField()
    price = AmountField()
    notional = AmountField()
    fee = AmountField()
    realized_pnl = AmountField(allow_null=True)

    class Meta:
        model = Trade
        fields = [
            "id",
            "order",
            "portfolio",
            "coin",
            "side",
            "quantity",
            "price",
            "notional",
            "fee",
            "realized_pnl",
            "executed_at",
        ]
        read_only_fields = fields


class WatchlistSerializer(serializers.ModelSerializer):
    coins = serializers.ListField(child=serializers.CharField(max_length=100), max_length=500, default=list)

    class Meta:
        model = Watchlist
        fields = ["id", "name", "coins", "created_at"]
        read_only_fields = ["id", "created_at"]

    def to_representation(self, watchlist: Watchlist) -> dict:
        return {
            "id": watchlist.pk,
            "name": watchlist.name,
            "coins": sorted(coin.pk for coin in watchlist.coins.all()),
            "created_at": serializers.DateTimeField().to_representation(watchlist.created_at),
        }


class AlertSerializer(serializers.ModelSerializer):
    coin = serializers.SlugRelatedField(slug_field="id", queryset=Coin.objects.all())
    threshold = AmountField(min_value=Decimal(-(10**15)), max_value=Decimal(10) ** 15)

    class Meta:
        model = Alert
        fields = [
            "id",
            "coin",
            "condition",
            "threshold",
            "is_active",
            "notify_email",
            "is_met",
            "last_triggered_at",
            "created_at",
        ]
        read_only_fields = ["id", "is_met", "last_triggered_at", "created_at"]

    def validate(self, data: dict) -> dict:
        condition = data.get("condition", getattr(self.instance, "condition", None))
        threshold = data.get("threshold", getattr(self.instance, "threshold", None))
        if (
            condition in {Alert.Condition.PRICE_ABOVE, Alert.Condition.PRICE_BELOW}
            and threshold is not None
            and threshold <= 0
        ):
            raise serializers.ValidationError({"threshold": ["A price threshold must be above 0."]})
        return data


class NotificationSerializer(serializers.ModelSerializer):
    is_read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "link", "created_at", "read_at", "is_read"]
        read_only_fields = fields

    def get_is_read(self, notification: Notification) -> bool:
        return notification.read_at is not None
