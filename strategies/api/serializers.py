"""Strategy, backtest and optimisation API shapes."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cryptodesk.api.fields import AmountField, BoundedDecimalField
from market.models import Coin
from strategies import optimizations
from strategies.engine.kinds import KINDS, TIMEFRAMES
from strategies.engine.optimize import OBJECTIVES
from strategies.models import Backtest, Optimization, PaperRun, Strategy


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
        "profit_factor, buy_and_hold_return; fees_paid and final_equity as decimal strings. Against buy and hold of "
        "the same coin over the same bars, from the daily returns r (equity) and b (close), risk-free 0, as empyrical "
        "defines them: beta = cov(r, b) / var(b), alpha = (1 + mean(r - beta × b))^365 - 1 (a fraction), "
        "tracking_error = stdev(r - b) × √365, information_ratio = mean(r - b) / stdev(r - b) × √365; each null "
        "with fewer than 2 days, alpha and beta when the coin's price never moved, information_ratio at 0 tracking "
        "error."
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


# --- optimisations -----------------------------------------------------------------------------------

GRID_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "number"}]},
    },
    "description": "{param: [values]}: only the kind's declared parameters (GET strategy-kinds/), each value within "
    "its bounds; at most OPTIMIZE_MAX_COMBINATIONS (default 2000) combinations. Parameters left out keep the "
    "strategy's value.",
    "example": {"fast": [10, 20, 30], "slow": [50, 100, 200]},
}


@extend_schema_field(GRID_SCHEMA)
class GridField(serializers.Field):
    """The grid's shape only (an object); each parameter and value is checked against the kind by the service,
    whose errors name `grid.<param>`."""

    default_error_messages = {"invalid": "Expected an object of parameter names, each with a list of values."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value):
        return value


class WalkForwardSerializer(serializers.Serializer):
    train_bars = serializers.IntegerField(
        min_value=2, max_value=optimizations.WALK_FORWARD_BARS_MAX, help_text="Bars each window optimises on."
    )
    test_bars = serializers.IntegerField(
        min_value=2,
        max_value=optimizations.WALK_FORWARD_BARS_MAX,
        help_text="Bars the window's best parameters then trade; the windows move on by this many bars.",
    )


class OptimizationCreateSerializer(BacktestCreateSerializer):
    grid = GridField()
    objective = serializers.ChoiceField(
        choices=list(OBJECTIVES), default="sharpe", help_text="Ranks the combinations: max_drawdown is minimised."
    )
    walk_forward = WalkForwardSerializer(required=False, allow_null=True, default=None)


class OptimizationRowSerializer(serializers.Serializer):
    params = serializers.DictField(help_text="Every parameter of the combination.")
    metrics = serializers.DictField(help_text="Exactly the metrics of a backtest of these parameters.")


class OptimizationBestSerializer(OptimizationRowSerializer):
    index = serializers.IntegerField(help_text="Its row in `results`.")


class OptimizationWindowSerializer(serializers.Serializer):
    train_start = serializers.IntegerField(help_text="Epoch ms of the first train bar.")
    train_end = serializers.IntegerField(help_text="Epoch ms of the last train bar.")
    test_start = serializers.IntegerField()
    test_end = serializers.IntegerField()
    params = serializers.DictField(
        allow_null=True, help_text="The best on the train bars; null: none had the objective."
    )
    in_sample = serializers.DictField(allow_null=True, help_text="Its metrics on the train bars.")
    out_of_sample = serializers.DictField(help_text="Its metrics on the test bars.")


class DeflatedSharpeSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="The deflated Sharpe ratio: a probability, 0 to 1.")
    sharpe = serializers.FloatField(help_text="The best's Sharpe ratio (annualised, √365).")
    expected_maximum_sharpe = serializers.FloatField(help_text="The best Sharpe ratio luck alone would give.")
    probabilistic_sharpe = serializers.FloatField(allow_null=True, help_text="P(true Sharpe > 0).")
    trials = serializers.IntegerField()
    sharpe_variance = serializers.FloatField(help_text="Variance of the trials' Sharpe ratios (annualised).")
    skewness = serializers.FloatField()
    kurtosis = serializers.FloatField(help_text="Not excess: 3 for normal returns.")
    observations = serializers.IntegerField(help_text="Daily returns of the best.")


class OptimizationSerializer(serializers.ModelSerializer):
    strategy = serializers.IntegerField(source="strategy_id")
    coin = serializers.CharField(source="coin_id")
    initial_capital = AmountField()
    fee_bps = serializers.DecimalField(max_digits=8, decimal_places=4, coerce_to_string=True, normalize_output=True)
    slippage_bps = serializers.DecimalField(
        max_digits=8, decimal_places=4, coerce_to_string=True, normalize_output=True
    )
    grid = GridField()
    walk_forward = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField()
    best = OptimizationBestSerializer(allow_null=True)
    windows = OptimizationWindowSerializer(many=True)
    oos_metrics = serializers.DictField(
        allow_null=True, help_text="Metrics of the test windows stitched end to end (walk-forward only)."
    )
    oos_equity = serializers.ListField(
        child=serializers.ListField(), help_text="[[epoch ms, equity], …] of the stitched test windows."
    )
    deflated_sharpe = DeflatedSharpeSerializer(allow_null=True)

    class Meta:
        model = Optimization
        fields = [
            "id",
            "strategy",
            "status",
            "progress",
            "error",
            "kind",
            "params",
            "grid",
            "objective",
            "walk_forward",
            "coin",
            "timeframe",
            "start",
            "end",
            "initial_capital",
            "fee_bps",
            "slippage_bps",
            "combinations",
            "skipped",
            "data_start",
            "data_end",
            "bars",
            "best",
            "deflated_sharpe",
            "oos_metrics",
            "windows",
            "oos_equity",
            "results",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(WalkForwardSerializer(allow_null=True))
    def get_walk_forward(self, optimization: Optimization) -> dict | None:
        if not optimization.is_walk_forward:
            return None
        return {"train_bars": optimization.train_bars, "test_bars": optimization.test_bars}

    @extend_schema_field(OptimizationRowSerializer(many=True))
    def get_results(self, optimization: Optimization) -> list[dict]:
        return optimizations.result_rows(optimization)


class OptimizationSummarySerializer(OptimizationSerializer):
    """For lists: everything but the rows, windows and equity (fetch one optimisation for those)."""

    class Meta(OptimizationSerializer.Meta):
        fields = [
            name for name in OptimizationSerializer.Meta.fields if name not in {"results", "windows", "oos_equity"}
        ]
        read_only_fields = fields
