"""Market API shapes: coins with their latest quote, freshness included."""

from django.db import models
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cryptodesk.api.fields import AmountField, PercentField
from cryptodesk.money import as_str
from market.models import Coin, GlobalStats, Source, SyncRun, TrendingCoin
from market.selectors import is_stale


class CoinSerializer(serializers.ModelSerializer):
    image = serializers.SerializerMethodField(help_text="The coin's logo, served by this app.")
    current_price = AmountField(source="quote.current_price")
    market_cap = AmountField(source="quote.market_cap", allow_null=True)
    total_volume = AmountField(source="quote.total_volume", allow_null=True)
    price_change_percentage_24h = PercentField(source="quote.price_change_percentage_24h", allow_null=True)
    high_24h = AmountField(source="quote.high_24h", allow_null=True)
    low_24h = AmountField(source="quote.low_24h", allow_null=True)
    last_updated = serializers.DateTimeField(source="quote.last_updated")
    stale = serializers.SerializerMethodField(help_text="The quote is older than MARKET_STALE_AFTER.")
    source = serializers.CharField(source="quote.source")
    sparkline_7d = serializers.ListField(
        source="quote.sparkline_7d", child=serializers.CharField(), help_text="Prices over 7 days, oldest first."
    )

    class Meta:
        model = Coin
        fields = [
            "id",
            "symbol",
            "name",
            "image",
            "market_cap_rank",
            "current_price",
            "market_cap",
            "total_volume",
            "price_change_percentage_24h",
            "high_24h",
            "low_24h",
            "last_updated",
            "stale",
            "source",
            "sparkline_7d",
        ]
        read_only_fields = fields

    def get_image(self, coin: Coin) -> str:
        return reverse("market:coin-logo", args=[coin.pk])

    def get_stale(self, coin: Coin) -> bool:
        return is_stale(coin.quote.last_updated)


def series_point_schema(*, values: int, description: str) -> dict:
    """One series point: epoch ms (an integer) followed by `values` decimal strings."""
    return {
        "type": "array",
        "description": description,
        "items": {"oneOf": [{"type": "integer", "format": "int64"}, {"type": "string", "format": "decimal"}]},
        "minItems": 1 + values,
        "maxItems": 1 + values,
    }


OHLC_SCHEMA = {
    "type": "array",
    "items": series_point_schema(values=4, description="[start ms, open, high, low, close]"),
}


@extend_schema_field(series_point_schema(values=1, description="[epoch ms, decimal string]"))
class SeriesPointField(serializers.ListField):
    pass


class HistorySerializer(serializers.Serializer):
    prices = serializers.ListField(child=SeriesPointField(), help_text="[[epoch ms, price], …]")
    market_caps = serializers.ListField(child=SeriesPointField(), help_text="[[epoch ms, market cap], …]")
    total_volumes = serializers.ListField(child=SeriesPointField(), help_text="[[epoch ms, volume], …]")


class TrendingSerializer(serializers.ModelSerializer):
    coin = serializers.SerializerMethodField()

    class Meta:
        model = TrendingCoin
        fields = ["rank", "score", "as_of", "coin"]

    def get_coin(self, trending: TrendingCoin) -> dict:
        coin = trending.coin
        quote = getattr(coin, "quote", None)
        return {
            "id": coin.pk,
            "symbol": coin.symbol,
            "name": coin.name,
            "image": reverse("market:coin-logo", args=[coin.pk]),
            "market_cap_rank": coin.market_cap_rank,
            "current_price": as_str(quote.current_price) if quote else None,
            "price_change_percentage_24h": as_str(quote.price_change_percentage_24h)
            if quote and quote.price_change_percentage_24h is not None
            else None,
        }


class MarketDataState(models.TextChoices):
    OK = "ok", "Figures from the last sync"
    EMPTY = "empty", "No sync has brought any yet: every figure is null"


class GlobalStatsSerializer(serializers.ModelSerializer):
    """The whole market as of the last sync; before any sync every figure is null and `status` is `empty`."""

    as_of = serializers.DateTimeField(allow_null=True)
    total_market_cap = AmountField(allow_null=True)
    total_volume = AmountField(allow_null=True)
    btc_dominance = PercentField(allow_null=True)
    eth_dominance = PercentField(allow_null=True)
    market_cap_change_percentage_24h = PercentField(allow_null=True)
    active_cryptocurrencies = serializers.IntegerField(allow_null=True)
    source = serializers.ChoiceField(choices=Source.choices, allow_null=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = GlobalStats
        fields = [
            "as_of",
            "total_market_cap",
            "total_volume",
            "btc_dominance",
            "eth_dominance",
            "market_cap_change_percentage_24h",
            "active_cryptocurrencies",
            "source",
            "status",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=MarketDataState.choices))
    def get_status(self, stats: GlobalStats) -> str:
        return MarketDataState.OK


EMPTY_GLOBAL_STATS = {
    **dict.fromkeys(GlobalStatsSerializer.Meta.fields),
    "status": MarketDataState.EMPTY.value,
}


class SyncRunSerializer(serializers.ModelSerializer):
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    requested_by = serializers.EmailField(source="requested_by.email", allow_null=True, default=None)

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "kind",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "duration_s",
            "coins_upserted",
            "records_ok",
            "records_skipped",
            "points_written",
            "points_deleted",
            "api_calls",
            "error",
            "skipped",
            "requested_by",
        ]
        read_only_fields = fields


class SyncQueuedSerializer(serializers.Serializer):
    task_id = serializers.CharField()
    sync_run = SyncRunSerializer()
