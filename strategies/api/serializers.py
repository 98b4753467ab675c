"""Strategy and backtest API shapes."""

from decimal import Decimal

from rest_framework import serializers

from cryptodesk.api.fields import AmountField, BoundedDecimalField
from market.models import Coin
from strategies.engine.kinds import KINDS, TIMEFRAMES
from strategies.models import Backtest, PaperRun, Strategy


class StrategySerializer(serializers.ModelSerializer):
    coin = serializers.SlugRelatedField(slug_field="id", queryset=Coin.objects.all())
    kind = serializers.ChoiceField(choices=list(KINDS))
    timeframe = serializers.ChoiceField(choices=list(TIMEFRAMES), default="1d")
    params = serializers.DictField(required=False, default=dict, help_text="Per kind: see GET strategy-kinds/.")
    owner = serializers.CharField(source="owner.name", read_only=True)
    is_mine = serializers.SerializerMethodField()

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "params",
            "coin",
            "timeframe",
            "visibility",
            "owner",
            "is_mine",
            "cloned_from",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "is_mine", "cloned_from", "created_at", "updated_at"]

    def get_is_mine(self, strategy: Strategy) -> bool:
        request = self.context.get("request")
        return bool(request and strategy.owner_id == request.user.pk)


class KindParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["integer", "decimal"])
    default = serializers.JSONField(help_text="An integer, or a decimal string for decimal parameters.")
    minimum = serializers.JSONField()
    maximum = serializers.JSONField()
    description = serializers.CharField()


class KindSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    params = KindParamSerializer(many=True)


class BacktestCreateSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    initial_capital = AmountField(min_value=Decimal("0.01"), max_value=Decimal(10) ** 15, default=Decimal(10_000))
    fee_bps = BoundedDecimalField(
        max_digits=8, decimal_places=4, min_value=Decimal(0), max_value=Decimal(1000), default=Decimal(10)
    )
    slippage_bps = BoundedDecimalField(
        max_digits=8, decimal_places=4, min_value=Decimal(0), max_value=Decimal(1000), default=Decimal(0)
    )

    def validate(self, data: dict) -> dict:
        if data["end"] <= data["start"]:
            raise serializers.ValidationError({"end": ["The end must be after the start."]})
        return data


class BacktestSerializer(serializers.ModelSerializer):
    initial_capital = AmountField()
    fee_bps = serializers.DecimalField(max_digits=8, decimal_places=4, coerce_to_string=True, normalize_output=True)
    slippage_bps = serializers.DecimalField(
        max_digits=8, decimal_places=4, coerce_to_string=True, normalize_output=True
    )
    coin = serializers.CharField(source="coin_id")
    metrics = serializers.DictField(
        help_text="total_return, cagr, max_drawdown (positive), win_rate, exposure as fractions (0.12 = 12 %); "
        "sharpe and sortino from daily equity returns × √365, risk-free 0; trades = closed round trips; "
        "max_drawdown_at (epoch ms of the bar at the deepest fall, null without one), max_drawdown_duration_days, "
        "profit_factor, buy_and_hold_return; fees_paid and final_equity as decimal strings."
    )
    equity_curve = serializers.ListField(
        child=serializers.ListField(), help_text="[[epoch ms, equity, buy-and-hold equity], …] (decimal strings)."
    )
    trades = serializers.ListField(child=serializers.DictField())

    class Meta:
        model = Backtest
        fields = [
            "id",
            "strategy",
            "status",
            "progress",
            "error",
            "kind",
            "params",
            "coin",
            "timeframe",
            "start",
            "end",
            "initial_capital",
            "fee_bps",
            "slippage_bps",
            "data_start",
            "data_end",
            "bars",
            "metrics",
            "equity_curve",
            "trades",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class PaperRunCreateSerializer(serializers.Serializer):
    portfolio = serializers.IntegerField(help_text="One of your portfolios.")


class PaperRunSerializer(serializers.ModelSerializer):
    capital = AmountField()
    coin = serializers.CharField(source="coin_id")
    portfolio = serializers.IntegerField(source="portfolio_id")
    strategy = serializers.IntegerField(source="strategy_id")

    class Meta:
        model = PaperRun
        fields = [
            "id",
            "strategy",
            "portfolio",
            "kind",
            "params",
            "coin",
            "timeframe",
            "capital",
            "status",
            "last_bar_ms",
            "last_error",
            "last_error_at",
            "started_at",
            "stopped_at",
        ]
        read_only_fields = fields


class DriftSerializer(serializers.Serializer):
    period = serializers.DictField()
    paper = serializers.DictField(help_text="return (fraction), equity (decimal string), fills")
    backtest = serializers.DictField(allow_null=True, help_text="return, equity, trades over the same period")
    return_difference = serializers.FloatField(allow_null=True, help_text="paper return minus backtest return")
    notes = serializers.CharField()


class PaperRunDetailSerializer(PaperRunSerializer):
    drift = serializers.SerializerMethodField()

    class Meta(PaperRunSerializer.Meta):
        fields = [*PaperRunSerializer.Meta.fields, "drift"]
        read_only_fields = fields

    def get_drift(self, run: PaperRun) -> dict:
        from strategies.services import drift_report

        return DriftSerializer(drift_report(run)).data


class BacktestSummarySerializer(BacktestSerializer):
    """For lists: everything but the curve and the trades (fetch one backtest for those)."""

    class Meta(BacktestSerializer.Meta):
        fields = [name for name in BacktestSerializer.Meta.fields if name not in {"equity_curve", "trades"}]
        read_only_fields = fields
