"""Filters for orders and trades: one FilterSet for the API and the pages."""

import django_filters
from django.db.models import Q

from cryptodesk.api.filters import IdFilter, SafeIsoDateTimeFilter

from .models import Order, Trade


class OrderFilter(django_filters.FilterSet):
    portfolio = IdFilter(field_name="portfolio_id")
    coin = django_filters.CharFilter(field_name="coin_id")
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    type = django_filters.ChoiceFilter(choices=Order.Type.choices)

    class Meta:
        model = Order
        fields = ["portfolio", "coin", "status", "side", "type"]


class TradeFilter(django_filters.FilterSet):
    portfolio = IdFilter(field_name="portfolio_id")
    coin = django_filters.CharFilter(field_name="coin_id")
    symbol = django_filters.CharFilter(field_name="coin__symbol", lookup_expr="iexact", max_length=100)
    search = django_filters.CharFilter(method="filter_search", max_length=100, help_text="A coin's symbol or name.")
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    executed_after = SafeIsoDateTimeFilter(field_name="executed_at", lookup_expr="gte")
    executed_before = SafeIsoDateTimeFilter(field_name="executed_at", lookup_expr="lt")

    class Meta:
        model = Trade
        fields = ["portfolio", "coin", "symbol", "search", "side", "executed_after", "executed_before"]

    def filter_search(self, queryset, name, value):
        """The symbol exactly or the name in part, either case ("btc", "Bitco"); the coin id too ("bitcoin")."""
        return queryset.filter(Q(coin__symbol__iexact=value) | Q(coin__name__icontains=value) | Q(coin_id=value))
